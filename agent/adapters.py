"""The adapter bank: named meta-concept LoRA adapters of the small VLM, each with a routing centroid.

Why: SLC's meta personalization trains K LoRA adapters once, each on a cluster ("meta concept") of
public images; a new concept is routed to the adapter whose centroid is nearest to the mean embedding of
the concept's reference images, so personalizing needs no training per concept. This module is the
on-disk contract between training (which writes a bank) and the runtime (which loads and routes).

On-disk format (``format_version`` 1)::

    <bank>/
      manifest.json
      adapters/<name>/adapter_config.json      # a peft adapter folder (PeftModel.save_pretrained output)
      adapters/<name>/adapter_model.safetensors

``manifest.json``::

    {
      "format_version": 1,
      "base_model": "HuggingFaceTB/SmolVLM-256M-Instruct",   # id or path the adapters were trained on
      "embedder": "openai/clip-vit-base-patch32",            # image encoder of the centroids (None = unknown)
      "adapters": [
        {"name": "pets",                       # [A-Za-z0-9_.-]{1,64}, unique
         "path": "adapters/pets",              # relative to the bank folder (absolute paths are accepted)
         "centroid": [0.01, -0.2, ...],        # mean image embedding of the meta concept, any norm
         "concepts": ["dog", "cat"],           # optional: what the cluster holds (for people)
         "metrics": {"val_weighted_acc": 0.91}}  # optional: numbers training measured
      ]
    }

All centroids share one dimension, which must be the dimension of the embedder that made them: routing
compares a concept's mean reference embedding (from concept memory, same embedder) against them by
cosine similarity. Writing goes through :meth:`AdapterBank.create` / :meth:`AdapterBank.add_adapter`,
which validate as they go and write the manifest atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field, field_validator

from slc.agent.detector import RecognitionName
from slc.agent.errors import AdapterBankError

if TYPE_CHECKING:
    from peft import PeftModel

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class AdapterEntry(BaseModel):
    """One meta adapter of a bank."""

    name: str
    path: str = Field(description="peft adapter folder, relative to the bank folder (or absolute).")
    centroid: list[float] = Field(min_length=1, description="Routing centroid in the embedder's space.")
    concepts: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME_RE.match(v) or v in (".", ".."):
            raise ValueError(f"adapter name {v!r} must match {_NAME_RE.pattern} (it becomes a folder and a peft name)")
        return v

    @field_validator("centroid")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        arr = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or not np.any(arr):
            raise ValueError("centroid must be finite and non-zero")
        return v


class BankManifest(BaseModel):
    """The manifest.json of a bank."""

    format_version: int = FORMAT_VERSION
    base_model: str = Field(description="Id or path of the checkpoint the adapters were trained on.")
    embedder: str | None = Field(default=None, description="Image encoder id/path that produced the centroids.")
    recognition: RecognitionName = Field(default="yes_no", description=(
        "How the adapters were trained to answer recognition (SmallVLM uses the same protocol, see "
        "slc.agent.recognition): 'yes_no' = the concept question -> Yes/No; 'describe' = the model first "
        "describes the image, then answers; 'likelihood' = P(the model describes the image as the concept's "
        "identity text)."))
    recognition_threshold: float = Field(default=0.5, gt=0, lt=1, description=(
        "'likelihood' only: the probability above which a concept counts as present (calibrated on training "
        "concepts when the bank was trained)."))
    adapters: list[AdapterEntry] = Field(default_factory=list)


class AdapterBank:
    """A folder of peft adapters plus their routing centroids (see the module docstring for the format)."""

    def __init__(self, root: str | os.PathLike[str], manifest: BankManifest) -> None:
        self.root = Path(root).expanduser().resolve()
        self.manifest = manifest
        self._check()

    # -- reading ---------------------------------------------------------------------------------------

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "AdapterBank":
        """Open a bank folder; raises :class:`AdapterBankError` naming what is wrong."""
        folder = Path(root).expanduser()
        path = folder / MANIFEST
        if not path.is_file():
            raise AdapterBankError(f"{folder} is not an adapter bank: no {MANIFEST} (set SLC_SMALL__ADAPTER_BANK to a bank folder)")
        try:
            manifest = BankManifest.model_validate_json(path.read_text())
        except ValueError as exc:
            raise AdapterBankError(f"{path} is not a valid bank manifest: {exc}") from exc
        if manifest.format_version > FORMAT_VERSION:
            raise AdapterBankError(f"{path} has format_version {manifest.format_version}; this slc reads up to {FORMAT_VERSION}")
        bank = cls(folder, manifest)
        for entry in manifest.adapters:
            if not (bank.adapter_path(entry.name) / "adapter_config.json").is_file():
                raise AdapterBankError(f"adapter {entry.name!r}: {bank.adapter_path(entry.name)} has no adapter_config.json")
        return bank

    def _check(self) -> None:
        names = [a.name for a in self.manifest.adapters]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise AdapterBankError(f"duplicate adapter names in bank {self.root}: {sorted(dupes)}")
        dims = {len(a.centroid) for a in self.manifest.adapters}
        if len(dims) > 1:
            raise AdapterBankError(f"centroids of bank {self.root} have different dimensions: {sorted(dims)}")

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.manifest.adapters]

    @property
    def base_model(self) -> str:
        """The base checkpoint; a relative path is resolved against the bank folder (a bank that carries
        its own fine-tuned base, e.g. ``base/``, can be moved as one folder)."""
        ref = self.manifest.base_model
        if ref and not Path(ref).is_absolute() and (self.root / ref).exists():
            return str(self.root / ref)
        return ref

    @property
    def dim(self) -> int | None:
        return len(self.manifest.adapters[0].centroid) if self.manifest.adapters else None

    def __len__(self) -> int:
        return len(self.manifest.adapters)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def entry(self, name: str) -> AdapterEntry:
        for a in self.manifest.adapters:
            if a.name == name:
                return a
        raise AdapterBankError(f"no adapter {name!r} in bank {self.root}; it has: {', '.join(self.names) or 'none'}")

    def adapter_path(self, name: str) -> Path:
        path = Path(self.entry(name).path).expanduser()
        return path if path.is_absolute() else self.root / path

    def centroids(self) -> np.ndarray:
        """(K, dim) float32, rows L2-normalized (so a dot product with a unit vector is a cosine)."""
        if not self.manifest.adapters:
            return np.zeros((0, 0), dtype=np.float32)
        mat = np.asarray([a.centroid for a in self.manifest.adapters], dtype=np.float32)
        return mat / np.linalg.norm(mat, axis=1, keepdims=True)

    # -- routing ---------------------------------------------------------------------------------------

    def route_scores(self, embeddings: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
        """Cosine similarity of each embedding (row) to each centroid: (n, K)."""
        if not self.manifest.adapters:
            raise AdapterBankError(f"bank {self.root} has no adapters to route to")
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None, :]
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise AdapterBankError(
                f"embedding of shape {tuple(emb.shape)} cannot be routed: the bank's centroids have dimension {self.dim} "
                f"(embedder {self.manifest.embedder or 'unknown'}): the concept's photos must be embedded with the encoder the "
                f"bank was trained with: set SLC_IMAGE_ENCODER to it, or retrain the bank with `slc train bank --embedder "
                f"<your SLC_IMAGE_ENCODER>` (banks that record their embedder are routed with it automatically)"
            )
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if not np.all(np.isfinite(emb)) or np.any(norms == 0):
            raise AdapterBankError("cannot route a zero or non-finite embedding")
        return (emb / norms) @ self.centroids().T

    def route(self, embedding: np.ndarray | Sequence[float]) -> str:
        """Name of the adapter whose centroid is nearest (cosine) to ``embedding``."""
        return self.route_many(np.asarray(embedding, dtype=np.float32)[None, :])[0]

    def route_many(self, embeddings: np.ndarray | Sequence[Sequence[float]]) -> list[str]:
        """Nearest adapter per row of ``embeddings``; ties go to the adapter listed first."""
        scores = self.route_scores(embeddings)
        return [self.names[i] for i in scores.argmax(axis=1)]

    def route_concept(self, stored: str | None, embedding: Callable[[], np.ndarray] | None) -> str | None:
        """The adapter for one concept: the one stored with it when this bank has it, else the nearest
        centroid to its mean reference embedding (``embedding`` is called only then), else None."""
        if not self.manifest.adapters:
            return None
        if stored and stored in self:
            return stored
        return self.route(embedding()) if embedding is not None else None

    # -- writing ---------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, root: str | os.PathLike[str], *, base_model: str, embedder: str | None = None, exist_ok: bool = False,
        recognition: RecognitionName = "yes_no",
    ) -> "AdapterBank":
        """Start an empty bank in ``root`` (refuses a folder that already holds a manifest unless ``exist_ok``)."""
        folder = Path(root).expanduser()
        if (folder / MANIFEST).exists():
            if not exist_ok:
                raise AdapterBankError(f"{folder} already holds an adapter bank; open it with AdapterBank.load")
            return cls.load(folder)
        folder.mkdir(parents=True, exist_ok=True)
        bank = cls(folder, BankManifest(base_model=str(base_model), embedder=embedder, recognition=recognition))
        bank.save()
        return bank

    def add_adapter(
        self,
        name: str,
        source: str | os.PathLike[str] | PeftModel,
        centroid: Sequence[float] | np.ndarray,
        *,
        concepts: Sequence[str] = (),
        metrics: dict[str, float] | None = None,
        adapter_name: str | None = None,
        replace: bool = False,
    ) -> AdapterEntry:
        """Copy an adapter into the bank and record it; the manifest is saved at once.

        ``source`` is a saved peft adapter folder, or a ``PeftModel`` (then ``adapter_name`` picks which of
        its adapters, default its active one). The files are copied to ``adapters/<name>`` so the bank is
        self-contained and can be moved as one folder.
        """
        entry = AdapterEntry(
            name=name,
            path=f"adapters/{name}",
            centroid=[float(x) for x in np.asarray(centroid, dtype=np.float64).ravel()],
            concepts=list(concepts),
            metrics=dict(metrics or {}),
        )
        others = {len(a.centroid) for a in self.manifest.adapters if a.name != name}
        if others and len(entry.centroid) not in others:
            raise AdapterBankError(f"centroid has dimension {len(entry.centroid)}, the bank's centroids have {others.pop()}")
        if name in self and not replace:
            raise AdapterBankError(f"bank {self.root} already has an adapter {name!r} (pass replace=True)")
        dest = self.root / entry.path
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            staged = Path(tmp) / "adapter"
            if hasattr(source, "save_pretrained") and hasattr(source, "peft_config"):
                which = adapter_name or source.active_adapter
                source.save_pretrained(tmp, selected_adapters=[which])
                saved = Path(tmp) if which == "default" else Path(tmp) / which
                if not (saved / "adapter_config.json").is_file():
                    raise AdapterBankError(f"saving adapter {which!r} of the PeftModel produced no adapter_config.json")
                shutil.copytree(saved, staged)
            else:
                src = Path(os.fspath(source)).expanduser()
                if not (src / "adapter_config.json").is_file():
                    raise AdapterBankError(f"{src} is not a peft adapter folder (no adapter_config.json)")
                shutil.copytree(src, staged)
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, dest)
        self.manifest.adapters = [a for a in self.manifest.adapters if a.name != name] + [entry]
        self._check()
        self.save()
        return entry

    def save(self) -> Path:
        """Write manifest.json atomically (temp file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(self.manifest.model_dump(), indent=2) + "\n")
        os.replace(tmp, path)
        return path
