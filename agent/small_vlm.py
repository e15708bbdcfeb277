"""The small VLM runtime: personal-concept detection with routed meta adapters, batched.

Works over any transformers image-text-to-text checkpoint (HF id or local folder; Qwen2/2.5-VL,
SmolVLM/Idefics3, LLaVA-OneVision...) loaded through :func:`slc.agent.loading.load_vlm` (bfloat16 on GPU,
float32 on CPU), optionally with the meta adapters of an :class:`~slc.agent.adapters.AdapterBank`. How it
behaves is one :class:`~slc.agent.detector.DetectorConfig`.

Per (image, concept) the detector runs two steps (prompts in ``agent/prompts.py``, "Small VLM" section):

1. RECOGNIZE, scored and not generated, by the configured recognition protocol
   (:mod:`slc.agent.recognition`; default: what the bank's manifest says its adapters were trained for,
   else "yes_no"): Yes/No probabilities, ``confidence = P(yes) / (P(yes) + P(no))`` and
   ``yes_no_mass = P(yes) + P(no)``.
2. DETECT, generated: SLC's per-concept JSON ``{"<name>": {"present", "location-absolute",
   "location-relative", "concept-info"}}``. The reply is parsed, repaired when it has one obvious reading
   (:mod:`slc.agent.json_reply`), validated (:mod:`slc.agent.detection_json`), and retried with a stricter
   prompt up to ``max_attempts`` in all.

How status is derived (:func:`derive_status`, a pure function so it is tested directly):

- ``yes_no_mass >= min_yes_no_mass``: the model is answering the Yes/No question, so status comes from the
  probabilities (present iff confidence >= 0.5), ``status_source="yes_no"``. The JSON only supplies
  locations and evidence; when it fails, locations stay empty, ``parse_error`` and ``raw_output`` say why,
  and the status stands (it did not come from the text).
- Otherwise (the Yes/No mass is too small to mean anything, e.g. an untrained checkpoint or one that
  answers in prose), status comes from the JSON's ``present``, ``status_source="json"``.
- Neither valid: ``status="unknown"`` with the raw text kept. Never a silent "absent".

``confidence`` is always the Yes/No ratio (in [0, 1], and 1 - confidence is P(no | yes-or-no)); read
``yes_no_mass`` to know how much it means. Locations are kept only for status "present".

Generation is the expensive part, so with ``locate="auto"`` (default) the JSON pass runs only for pairs
the probabilities do not call absent: a 500-photo library scan costs 500 scored forward passes plus one
generation per hit. ``locate="always"`` / ``"never"`` force it on / off. A protocol that locates without
generation (:attr:`~slc.agent.recognition.RecognitionProtocol.locates`: ``reference``, whose bank's language
path was never taught the JSON) replaces step 2: its :meth:`~slc.agent.recognition.RecognitionProtocol.locate`
gives ``location_absolute`` (a 3x3 cell) and the evidence, once per photo for all concepts of the call.

Adapters: each bank adapter is loaded ONCE into the same ``PeftModel`` (``load_adapter(adapter_name=)``)
the first time a concept routes to it, and switching is ``set_adapter`` (~0.8 ms on the tiny model vs.
~60 ms to reload even that model from disk, seconds for a real one; see benchmarks/scan_throughput.py).
The base model runs under ``disable_adapter()``. Which adapters are loaded is peft's own record
(``peft_config``); merged adapters are cached here.
Several concepts in one query combine in one of two ways (``combine``):

- ``"per_concept"`` (default): each concept is scored under its OWN routed adapter; pairs are grouped by
  adapter so each group is one series of batched passes. Chosen on measurement
  (benchmarks/scan_throughput.py, tiny Idefics3, CPU, 1 thread, 2 concepts x 16 images, adapters a0/a1):
  the merge is no faster (per_concept vs merged-and-cached medians: 52.1 vs 52.3 ms in one run, 56.9 vs
  83.7 ms in another on the shared 2-core machine; the first merged call also builds the merge),
  because detection already costs one prompt per concept and grouping by adapter adds no forward pass,
  only a ``set_adapter`` per group (~0.8 ms median). But the merge moves every concept's
  answer as far from its own adapter's answer as dropping the adapter altogether (mean max|delta logit|
  5.5 merged vs own, 4.7 base vs own; 13/16 Yes/No decisions flipped for one concept, status agreement
  15/32). So per-concept passes give each concept exactly what its adapter was trained for at no cost.
- ``"merge"``: SLC's way: one adapter that is the weighted average of the routed adapters
  (``add_weighted_adapter(..., combination_type="cat")``, i.e. exactly the mean of the LoRA updates
  B_i A_i; cached per combination), used for every concept of the query.

Every model pass goes through a :class:`~slc.agent.recognition.ModelHandle` and is reported to the pass
hooks (:meth:`SmallVLM.add_pass_hook`): that is how the evals count what the model did, whoever called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slc.agent.adapters import AdapterBank
from slc.agent.concept_prompts import PromptKind, build_prompt, parse_identity_text
from slc.agent.detection import ConceptQuery, DerivedIdentity, Detection
from slc.agent.detection_json import StructuredAnswer, parse_detection_output
from slc.agent.detector import DetectorConfig, LocateMode
from slc.agent.errors import AdapterBankError, InvalidImageError, ModelNotFoundError
from slc.agent.images import ImageSource, load_image
from slc.agent.loading import load_vlm
from slc.agent.prompts import SMALL_DESCRIBE_FIRST, SMALL_VLM_PROMPT_VERSION
from slc.agent.recognition import (
    ModelHandle,
    PassHook,
    PassKind,
    RecognitionPair,
    RecognitionProtocol,
    YesNoScore,
    recognition_protocol,
    yes_no_token_ids,
)
from slc.agent.settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL.Image import Image
    from tqdm.auto import tqdm
    from transformers import PreTrainedModel, ProcessorMixin

log = logging.getLogger(__name__)

StatusSource = Literal["yes_no", "json"]
Status = Literal["present", "absent", "unknown"]


def derive_status(
    score: YesNoScore, answer: StructuredAnswer | None, *, min_yes_no_mass: float
) -> tuple[Status, StatusSource | None]:
    """The status rule of the module docstring: Yes/No probabilities when meaningful, else the JSON, else unknown."""
    if score.mass >= min_yes_no_mass and score.p_yes + score.p_no > 0:
        return ("present" if score.confidence >= 0.5 else "absent"), "yes_no"
    if answer is not None:
        return ("present" if answer.present else "absent"), "json"
    return "unknown", None


@dataclass
class _Pair:
    """One (image, concept) pair on its way through scoring and generation."""

    image: int
    concept: int
    score: YesNoScore | None = None
    answer: StructuredAnswer | None = None
    raw: str | None = None
    error: str | None = None
    attempts: int = 0
    description: str | None = None  # describe-then-decide: what the model said the image shows
    location: str | None = None  # a protocol that locates without generation: the 3x3 cell
    where: str | None = None  # ... and why (its evidence line)


class SmallVLM:
    """A loaded small VLM (+ optional adapter bank) that detects personal concepts in images.

    Thread-safe: one lock serializes calls, because the active adapter is state of the shared model.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        *,
        config: DetectorConfig | None = None,
        bank: AdapterBank | None = None,
        model_id: str | None = None,
    ) -> None:
        self.base_model = model
        self.model = model  # becomes a PeftModel when the first adapter loads
        self.processor = processor
        self.bank = bank
        self.model_id = model_id or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        self.config = config or DetectorConfig()
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        yes, no = yes_no_token_ids(processor)
        self._yes_ids, self._no_ids = tuple(yes), tuple(no)
        self._merged: dict[tuple[str, ...], str] = {}
        self._pass_hooks: list[PassHook] = []
        self._lock = threading.RLock()
        if bank is not None and bank.base_model and Path(bank.base_model).name != Path(str(self.model_id)).name:
            log.warning("adapter bank %s was trained on %s, the model is %s", bank.root, bank.base_model, self.model_id)

    @property
    def config(self) -> DetectorConfig:
        """How the detector behaves; assign a new config to change it (the protocol follows)."""
        return self._config

    @config.setter
    def config(self, config: DetectorConfig) -> None:
        self._config = config
        self.protocol: RecognitionProtocol = recognition_protocol(config, self.bank)

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        bank: AdapterBank | str | os.PathLike[str] | None = None,
        config: DetectorConfig | None = None,
        **overrides: object,
    ) -> SmallVLM:
        """Load a checkpoint (ModelNotFoundError when it is neither a folder nor obtainable) and a bank.

        ``overrides`` are :class:`DetectorConfig` fields (``locate="never"``...), applied over ``config``.
        """
        model, processor = load_vlm(path_or_id, device=device, dtype=dtype)
        if bank is not None and not isinstance(bank, AdapterBank):
            bank = AdapterBank.load(bank)
        config = DetectorConfig.model_validate({**dict(config or DetectorConfig()), **overrides})
        return cls(model, processor, config=config, bank=bank, model_id=str(path_or_id))

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: object) -> SmallVLM:
        """The small VLM the settings name (``small.*``); an unset model is the bank's base model.

        Raises ModelNotFoundError when neither a model nor a bank is configured. ``overrides`` are
        :meth:`from_pretrained` keywords (device, dtype, bank) or :class:`DetectorConfig` fields.
        """
        s = settings or get_settings()
        if s.torch_threads:
            import torch

            torch.set_num_threads(s.torch_threads)
        small = s.small
        model = small.model
        if model is None and small.adapter_bank is not None:  # a bank names the base it was trained on
            model = AdapterBank.load(small.adapter_bank).base_model or None
        if model is None:
            raise ModelNotFoundError(
                "No small VLM is configured: set SLC_SMALL__MODEL (any Hugging Face image-text-to-text checkpoint "
                "id, or a local checkpoint folder) or SLC_SMALL__ADAPTER_BANK (a trained bank names its base "
                "model), or run `slc demo`, which builds tiny offline models to try slc with."
            )
        config = DetectorConfig.model_validate(small.model_dump(include=set(DetectorConfig.model_fields)))
        load = {"device": small.device, "dtype": small.dtype, "bank": small.adapter_bank, **overrides}
        return cls.from_pretrained(model, config=config, **load)

    # -- adapters ----------------------------------------------------------------------------------------

    @property
    def loaded_adapters(self) -> list[str]:
        """Bank adapters loaded into the PeftModel so far (each loaded once), as peft records them."""
        if self.model is self.base_model:
            return []
        merged = set(self._merged.values())
        return [name for name in self.model.peft_config if name not in merged]

    def load_adapter(self, name: str) -> None:
        """Load bank adapter ``name`` into the shared PeftModel (no-op when already loaded)."""
        with self._lock:
            if name in self.loaded_adapters:
                return
            if self.bank is None:
                raise AdapterBankError(f"adapter {name!r} asked for, but this SmallVLM has no adapter bank")
            path = str(self.bank.adapter_path(name))
            if self.model is self.base_model:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.base_model, path, adapter_name=name)
            else:
                self.model.load_adapter(path, adapter_name=name)
            self.model.eval()

    def merged_adapter(self, names: Sequence[str]) -> str:
        """Name of the cached weighted-average adapter of ``names`` (created on first use)."""
        key = tuple(sorted(set(names)))
        if len(key) == 1:
            self.load_adapter(key[0])
            return key[0]
        with self._lock:
            if key in self._merged:
                return self._merged[key]
            for n in key:
                self.load_adapter(n)
            merged = "merge__" + "__".join(key)
            self.model.add_weighted_adapter(
                list(key), [1.0 / len(key)] * len(key), adapter_name=merged, combination_type="cat"
            )
            self._merged[key] = merged
            while len(self._merged) > self.config.max_merged:  # evict the oldest combination
                old_key = next(iter(self._merged))
                self.model.delete_adapter(self._merged.pop(old_key))
            return merged

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Run the block with ``adapter`` active (a bank or merged adapter name), or the base model for None.

        The block holds the runtime's lock, so :meth:`handle` inside it scores with that adapter.
        """
        with self._lock:
            if adapter is None:
                if self.model is self.base_model:
                    yield
                else:
                    with self.model.disable_adapter():
                        yield
                return
            if self.model is self.base_model or adapter not in self.model.peft_config:
                self.load_adapter(adapter)
            self.model.set_adapter(adapter)
            yield

    def route(self, embedding: np.ndarray) -> str | None:
        """The bank adapter for a concept's mean reference embedding (memory's ``concept_embedding``);
        None without a bank, i.e. the base model zero-shot."""
        if self.bank is None or not len(self.bank):
            return None
        return self.bank.route(embedding)

    def _adapter_for(self, query: ConceptQuery) -> str | None:
        if query.adapter is None:
            return None
        if self.bank is None:
            log.warning("concept %s routes to adapter %r but no bank is loaded: using the base model", query.token, query.adapter)
            return None
        if query.adapter not in self.bank:
            raise AdapterBankError(
                f"concept {query.token} routes to adapter {query.adapter!r}, which bank {self.bank.root} does not have "
                f"({', '.join(self.bank.names)}); re-route the concept against this bank"
            )
        return query.adapter

    def _groups(self, queries: Sequence[ConceptQuery]) -> dict[str | None, list[int]]:
        """Concept indices per adapter to activate (the combination policy lives here)."""
        routed = [self._adapter_for(q) for q in queries]
        if self.config.combine == "merge":
            distinct = sorted({a for a in routed if a is not None})
            key = self.merged_adapter(distinct) if distinct else None
            return {key: list(range(len(queries)))}
        groups: dict[str | None, list[int]] = {}
        for j, a in enumerate(routed):
            groups.setdefault(a, []).append(j)
        return groups

    # -- model passes ------------------------------------------------------------------------------------

    def add_pass_hook(self, hook: PassHook) -> None:
        """Call ``hook(kind)`` on every model pass ("forward" or "generate") this runtime makes, whoever asked
        for it (detection, a scan, a graph node, an eval mode). Adding the same hook twice adds it once."""
        if hook not in self._pass_hooks:
            self._pass_hooks.append(hook)

    def describe_identity(self, images: Sequence[ImageSource]) -> DerivedIdentity | None:
        """The concept's identity from its own photos (registration): each photo described with the describe
        turn (greedy, the base model), parsed, and every slot voted; None when no description has the
        identity form (a model that was never taught it describes in free prose)."""
        from collections import Counter

        photos = [load_image(p) for p in images]
        if not photos:
            return None
        with self._lock, self.using(None):
            handle = self.handle()
            inputs = handle.inputs([[im] for im in photos], [SMALL_DESCRIBE_FIRST] * len(photos))
            texts = [t.strip() for t in handle.generate(inputs, max_new_tokens=self.config.max_description_tokens)]
        parsed = [p for p in (parse_identity_text(t) for t in texts) if p is not None]
        if not parsed:
            return None
        category, votes = Counter(c for c, _ in parsed).most_common(1)[0]
        agreement = {"category": votes / len(photos)}
        attributes = {}
        for key in dict.fromkeys(k for _, attrs in parsed for k in attrs):
            value, votes = Counter(a[key] for _, a in parsed if key in a).most_common(1)[0]
            attributes[key], agreement[key] = value, votes / len(photos)
        return DerivedIdentity(category=category, attributes=attributes, descriptions=texts, agreement=agreement)

    def handle(self) -> ModelHandle:
        """The model as it is now (use inside :meth:`using` to pick the adapter), reporting to the pass hooks."""
        return ModelHandle(self.model, self.processor, self.device, self.dtype, self._yes_ids, self._no_ids,
                           on_pass=self._passed)

    def _passed(self, kind: PassKind) -> None:
        for hook in self._pass_hooks:
            hook(kind)

    # -- detection ---------------------------------------------------------------------------------------

    def detect(
        self, image: ImageSource, concepts: Sequence[ConceptQuery], *, round: int = 0, locate: LocateMode | None = None
    ) -> list[Detection]:
        """Detections for each concept in one image (same order as ``concepts``)."""
        return self.detect_batch([image], concepts, round=round, locate=locate)[0]

    def scan(
        self,
        images: Sequence[ImageSource],
        concept: ConceptQuery,
        *,
        batch_size: int | None = None,
        progress: bool = False,
        locate: LocateMode | None = None,
        on_invalid_image: Literal["raise", "unknown"] = "unknown",
    ) -> list[Detection]:
        """One concept over many photos ("which of these 500 photos show <bo>?"): one Detection per image.

        A library holds the odd broken file, so by default an unreadable photo yields status "unknown" with
        the reason in ``error`` instead of aborting the whole scan.
        """
        rows = self.detect_batch(
            images, [concept], batch_size=batch_size, progress=progress, locate=locate, on_invalid_image=on_invalid_image
        )
        return [row[0] for row in rows]

    def detect_batch(
        self,
        images: Sequence[ImageSource],
        concepts: Sequence[ConceptQuery],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        round: int = 0,
        locate: LocateMode | None = None,
        on_invalid_image: Literal["raise", "unknown"] = "raise",
    ) -> list[list[Detection]]:
        """Detections for every image x concept, in batched forward passes.

        Returns one list per image, in ``concepts`` order. Query images are read through
        :func:`slc.agent.images.load_image` lazily, a batch at a time (500 decoded phone photos would not fit
        in memory); a bad one raises InvalidImageError (``on_invalid_image="raise"``) or gives its pairs
        status "unknown" with the reason in ``error`` (``"unknown"``). Reference images are read up front
        and always raise: they are the concept's own data, not the user's photo library.
        """
        from tqdm.auto import tqdm

        queries = list(concepts)
        if not queries:
            return [[] for _ in images]
        names = [q.name for q in queries]
        if len(set(names)) != len(names):
            raise ValueError(f"concept names must be unique in one call: {names}")
        if on_invalid_image not in ("raise", "unknown"):
            raise ValueError("on_invalid_image must be 'raise' or 'unknown'")
        locate = locate or self.config.locate
        bs = batch_size or self.config.batch_size
        refs = [tuple(load_image(p) for p in q.reference_images) for q in queries]
        photos = _LazyImages(images, raise_errors=on_invalid_image == "raise", keep=2 * bs)
        pairs = [_Pair(i, j) for i in range(len(images)) for j in range(len(queries))]

        with self._lock:
            groups = self._groups(queries)
            labels = {j: key for key, idx in groups.items() for j in idx}
            bar = tqdm(total=len(pairs), desc="small VLM: scoring", unit="pair", disable=not progress, leave=False)
            placed: list[_Pair] = []  # located by the protocol after every group: each photo once for all concepts
            try:
                for key, idx in groups.items():
                    in_group = set(idx)
                    members = [p for p in pairs if p.concept in in_group]
                    with self.using(key), vision_once(self.model):
                        handle = self.handle()
                        self._score_pairs(handle, members, photos, refs, queries, bs, bar)
                        todo = [p for p in members if p.score is not None and self._wants_json(p, locate)]
                        if todo:
                            bar.set_description("small VLM: locating")
                        if self.protocol.locates:
                            placed += todo
                        else:
                            self._locate_pairs(handle, todo, photos, refs, queries, bs)
                if placed:  # image tokens: the vision path, which no LoRA adapter touches (agent/lora.py)
                    with self.using(None):
                        self._place_pairs(self.handle(), sorted(placed, key=lambda p: (p.image, p.concept)),
                                          photos, refs, queries, bs)
            finally:
                bar.close()

        out: list[list[Detection]] = [[] for _ in images]
        for p in pairs:
            out[p.image].append(self._detection(p, queries[p.concept], labels[p.concept], round, photos.errors.get(p.image)))
        return out

    def _wants_json(self, pair: _Pair, locate: LocateMode) -> bool:
        if locate == "always":
            return True
        if locate == "never":
            return False
        status, _ = derive_status(pair.score, None, min_yes_no_mass=self.config.min_yes_no_mass)  # type: ignore[arg-type]
        return status != "absent"

    @staticmethod
    def _batches(
        pairs: list[_Pair], photos: _LazyImages, refs: list[tuple[Image, ...]], queries: list[ConceptQuery], bs: int
    ) -> Iterator[tuple[list[_Pair], list[RecognitionPair]]]:
        """Chunks of at most ``bs`` readable pairs, each with its (photo, concept, reference photos) question."""
        chunk: list[_Pair] = []
        asked: list[RecognitionPair] = []
        for p in pairs:
            image = photos.get(p.image)
            if image is None:  # unreadable and on_invalid_image="unknown": no model work for it
                continue
            chunk.append(p)
            asked.append(RecognitionPair(image=image, image_key=p.image, query=queries[p.concept], references=refs[p.concept]))
            if len(chunk) == bs:
                yield chunk, asked
                chunk, asked = [], []
        if chunk:
            yield chunk, asked

    def _score_pairs(
        self, handle: ModelHandle, pairs: list[_Pair], photos: _LazyImages, refs: list[tuple[Image, ...]],
        queries: list[ConceptQuery], bs: int, bar: tqdm,
    ) -> None:  # fmt: skip
        done = 0
        for chunk, asked in self._batches(pairs, photos, refs, queries, bs):
            for p, result in zip(chunk, self.protocol.score(handle, asked)):
                p.score, p.description, p.error = result.score, result.description, result.error
            bar.update(len(chunk))
            done += len(chunk)
        bar.update(len(pairs) - done)  # unreadable images count as handled

    def _locate_pairs(
        self, handle: ModelHandle, pairs: list[_Pair], photos: _LazyImages, refs: list[tuple[Image, ...]],
        queries: list[ConceptQuery], bs: int,
    ) -> None:  # fmt: skip
        cfg = self.config
        pending = list(pairs)
        for attempt in range(1, cfg.max_attempts + 1):
            if not pending:
                return
            kind: PromptKind = "detect" if attempt == 1 else "strict"
            for chunk, asked in self._batches(pending, photos, refs, queries, bs):
                texts = [build_prompt(a.query, kind, len(a.references)) for a in asked]
                inputs = handle.inputs([a.images for a in asked], texts)
                replies = handle.generate(inputs, max_new_tokens=cfg.max_new_tokens, **cfg.generation_kwargs)
                for p, raw in zip(chunk, replies):
                    p.attempts, p.raw = attempt, raw
                    result = parse_detection_output(raw, queries[p.concept].name)
                    p.answer, p.error = result.answer, result.error
                    if result.repairs:
                        log.debug("small VLM: reply for %s repaired (%s)", queries[p.concept].token, ", ".join(result.repairs))
            failed = [p for p in pending if p.answer is None]
            if failed:
                log.info("small VLM: %d of %d replies unusable on attempt %d", len(failed), len(pending), attempt)
            pending = failed

    def _place_pairs(
        self, handle: ModelHandle, pairs: list[_Pair], photos: _LazyImages, refs: list[tuple[Image, ...]],
        queries: list[ConceptQuery], bs: int,
    ) -> None:  # fmt: skip
        """Locations from the protocol itself (no generation); pairs come sorted by photo, so a photo's
        concepts share one chunk and its views are encoded once."""
        for chunk, asked in self._batches(pairs, photos, refs, queries, bs):
            for p, found in zip(chunk, self.protocol.locate(handle, asked)):
                if found is not None:
                    p.location, p.where = found.cell, found.evidence

    def _detection(
        self, p: _Pair, query: ConceptQuery, adapter: str | None, round: int, image_error: str | None
    ) -> Detection:
        if p.score is None:  # the query image could not be read, or the protocol could not score it
            return Detection(
                concept=query.name, status="unknown", confidence=0.5, adapter=adapter, round=round,
                prompt_version=SMALL_VLM_PROMPT_VERSION, error=image_error or p.error or "not scored",
            )  # fmt: skip
        status, source = derive_status(p.score, p.answer, min_yes_no_mass=self.config.min_yes_no_mass)
        a = p.answer
        present = status == "present"
        return Detection(
            concept=query.name,
            status=status,
            confidence=min(1.0, max(0.0, p.score.confidence)),
            location_absolute=(a.location_absolute if a else p.location) if present else None,
            location_relative=a.location_relative if a and present else None,
            evidence=a.concept_info if a else (p.where if p.description is None else p.description),
            raw_output=p.raw,
            adapter=adapter,
            attempts=max(1, p.attempts),
            round=round,
            prompt_version=SMALL_VLM_PROMPT_VERSION,
            yes_no_mass=p.score.mass,
            status_source=source,
            json_present=a.present if a else None,
            parse_error=p.error if a is None and p.attempts else None,
        )


def _vision_tower(model: Any) -> Any:
    """The model's vision encoder module (the top-most ``vision_model`` / ``vision_tower``), or None."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in ("vision_model", "vision_tower"):
            return module
    return None


@contextlib.contextmanager
def vision_once(model: Any) -> Iterator[None]:
    """While open, each distinct image of a forward pass goes through the vision encoder once.

    Why: a batch asks about (image, concept) pairs, so an image asked about K concepts is K rows of the
    batch and was encoded K times (``slc scan`` with K = 8 concepts cost 7.55x K = 1, issue 19). The
    encoder's forward is wrapped for the time of one call: the rows of ``pixel_values`` (N, C, H, W) that
    are equal, with their per-row masks, are encoded once and their outputs copied back, so the language
    model sees exactly what it saw before. Vision towers that take other shapes (Qwen2-VL's flattened
    patches) run as they are. The language model still reads every pair's sequence, image tokens
    included: what is left of the K-fold cost is that (benchmarks/scan_concepts.py).
    """
    tower = _vision_tower(model)
    if tower is None:
        yield
        return
    import hashlib

    import torch

    original = tower.forward

    def forward(pixel_values: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args or not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or pixel_values.shape[0] < 2:
            return original(pixel_values, *args, **kwargs)
        n = pixel_values.shape[0]
        rows = {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n}
        first: dict[bytes, int] = {}
        inverse = []
        for i in range(n):
            h = hashlib.blake2b(pixel_values[i].detach().cpu().numpy().tobytes(), digest_size=16)
            for v in rows.values():
                h.update(v[i].detach().cpu().numpy().tobytes())
            inverse.append(first.setdefault(h.digest(), len(first)))
        if len(first) == n:
            return original(pixel_values, **kwargs)
        first_row: dict[int, int] = {}
        for i, slot in enumerate(inverse):
            first_row.setdefault(slot, i)
        keep = torch.tensor([first_row[slot] for slot in range(len(first))], device=pixel_values.device)
        out = original(pixel_values[keep], **{k: (v[keep] if k in rows else v) for k, v in kwargs.items()})
        back = torch.tensor(inverse, device=pixel_values.device)
        for field in ("last_hidden_state", "pooler_output"):
            value = getattr(out, field, None)
            if isinstance(value, torch.Tensor) and value.shape[0] == len(first):
                setattr(out, field, value[back])
        if getattr(out, "hidden_states", None) is not None:  # (some families leave entries None)
            out.hidden_states = tuple(h[back] if isinstance(h, torch.Tensor) and h.shape[0] == len(first) else h
                                      for h in out.hidden_states)
        return out

    tower.forward = forward
    try:
        yield
    finally:
        del tower.forward  # the class's forward again


class _LazyImages:
    """Query images read on demand (newest ``keep`` kept decoded); unreadable ones recorded in ``errors``."""

    def __init__(self, sources: Sequence[ImageSource], *, raise_errors: bool, keep: int) -> None:
        self.sources = sources
        self.raise_errors = raise_errors
        self.keep = max(1, keep)
        self.errors: dict[int, str] = {}
        self._cache: dict[int, Image] = {}

    def get(self, i: int) -> Image | None:
        if i in self.errors:
            return None
        if i not in self._cache:
            try:
                self._cache[i] = load_image(self.sources[i])
            except InvalidImageError as exc:
                if self.raise_errors:
                    raise
                self.errors[i] = str(exc)
                return None
            while len(self._cache) > self.keep:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[i]


__all__ = ["SmallVLM", "derive_status"]
