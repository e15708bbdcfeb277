"""The small VLM runtime: personal-concept detection with routed meta adapters, batched.

Works over any transformers image-text-to-text checkpoint (HF id or local folder; Qwen2/2.5-VL,
SmolVLM/Idefics3, LLaVA-OneVision...) loaded through :func:`slc.agent.loading.load_vlm` (bfloat16 on GPU,
float32 on CPU), optionally with the meta adapters of an :class:`~slc.agent.adapters.AdapterBank`.

Per (image, concept) the detector runs two prompts (``agent/prompts.py``, "Small VLM" section):

1. RECOGNIZE, scored and not generated: one forward pass; at the answer position we read the softmax over
   the whole vocabulary and sum every single-token spelling of Yes and of No (``yes_no_token_ids``).
   ``confidence = P(yes) / (P(yes) + P(no))`` and ``yes_no_mass = P(yes) + P(no)``.
2. DETECT, generated: SLC's per-concept JSON ``{"<name>": {"present", "location-absolute",
   "location-relative", "concept-info"}}``. The reply is parsed, repaired when it has one obvious reading
   (:mod:`slc.agent.json_repair`), validated (:class:`StructuredAnswer`), and retried with a stricter
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

Recognition protocols (``recognition``; default: what the bank's manifest says its adapters were trained
for, else "yes_no"): "yes_no" is step 1 above; "describe" first generates the model's own description of
the image (SMALL_DESCRIBE_FIRST, greedy, once per image and adapter) and asks RECOGNIZE as the second
turn, Yes/No read as above; "likelihood" asks no question: P = the model's probability of describing the
image as the concept's identity text (:func:`identity_text`, teacher-forced, one forward pass) and, with
the bank's calibrated threshold t, p_yes = P(1-t)/Z, p_no = t(1-P)/Z (present iff P >= t). The learning
benchmark (slc.training.benchmark) measures why: a tiny model learns to describe far sooner than it
learns to compare a description with the concept's text.

Generation is the expensive part, so with ``locate="auto"`` (default) the JSON pass runs only for pairs
the probabilities do not call absent: a 500-photo library scan costs 500 scored forward passes plus one
generation per hit. ``locate="always"`` / ``"never"`` force it on / off.

Adapters: each bank adapter is loaded ONCE into the same ``PeftModel`` (``load_adapter(adapter_name=)``)
the first time a concept routes to it, and switching is ``set_adapter`` (~0.8 ms on the tiny model vs.
~60 ms to reload even that model from disk, seconds for a real one; see benchmarks/scan_throughput.py).
The base model runs under ``disable_adapter()``.
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
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slc.agent import prompts as P
from slc.agent.adapters import AdapterBank
from slc.agent.detection import ConceptQuery, Detection
from slc.agent.errors import AdapterBankError
from slc.agent.json_repair import parse_json_object

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from slc.agent.settings import Settings
    from slc.agent.images import ImageSource

log = logging.getLogger(__name__)

CombineMode = Literal["per_concept", "merge"]
LocateMode = Literal["auto", "always", "never"]
RecognitionMode = Literal["yes_no", "describe", "likelihood"]
StatusSource = Literal["yes_no", "json"]
BASE = None  # adapter key of the base model


# ----------------------------------------------------------------------------------------------------------
# The structured answer, Yes/No scores and the status rule (pure, tested directly)
# ----------------------------------------------------------------------------------------------------------


class StructuredAnswer(BaseModel):
    """SLC's per-concept JSON, validated. Accepts SLC's hyphenated keys and underscore spellings."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    present: bool
    location_absolute: str | None = Field(default=None, alias="location-absolute")
    location_relative: str | None = Field(default=None, alias="location-relative")
    concept_info: str | None = Field(default=None, alias="concept-info")

    @field_validator("present", mode="before")
    @classmethod
    def _bool(cls, v: Any) -> Any:
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("true", "yes", "present"):
                return True
            if low in ("false", "no", "absent"):
                return False
            raise ValueError(f"'present' must be true or false, got {v!r}")
        if not isinstance(v, bool):
            raise ValueError(f"'present' must be true or false, got {v!r}")
        return v

    @field_validator("location_absolute", "location_relative", "concept_info", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        elif not isinstance(v, str):
            v = str(v)
        v = v.strip()
        return v or None


def validate_answer(obj: dict[str, Any], name: str) -> StructuredAnswer:
    """Validate one concept's JSON; unwraps SLC's ``{"<name>": {...}}`` (also ``{"<<name>>": ...}``).

    Raises ``ValueError`` naming what is wrong.
    """
    inner: Any = obj
    for key in (name, f"<{name}>"):
        if isinstance(obj.get(key), dict):
            inner = obj[key]
            break
    else:
        if "present" not in obj and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            inner = next(iter(obj.values()))  # keyed by some other spelling of the concept
    try:
        return StructuredAnswer.model_validate(inner)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in exc.errors())) from exc


@dataclass(frozen=True)
class ParseResult:
    """What one generated reply gave: a valid answer, or why not."""

    answer: StructuredAnswer | None
    error: str | None
    repairs: tuple[str, ...] = ()


def parse_detection_output(text: str, name: str) -> ParseResult:
    """Find, repair and validate the JSON for concept ``name`` in a generated reply."""
    parsed = parse_json_object(text)
    if parsed is None:
        return ParseResult(None, "no JSON object in the reply")
    try:
        return ParseResult(validate_answer(parsed.value, name), None, tuple(parsed.repairs))
    except ValueError as exc:
        return ParseResult(None, f"JSON does not match the schema: {exc}", tuple(parsed.repairs))


class YesNoScore(BaseModel):
    """Probabilities of the Yes and No tokens (all spellings summed) at the answer position."""

    p_yes: float = Field(ge=0.0, le=1.0)
    p_no: float = Field(ge=0.0, le=1.0)

    @property
    def mass(self) -> float:
        return min(1.0, self.p_yes + self.p_no)

    @property
    def confidence(self) -> float:
        """P(yes | yes or no); 0.5 when both underflow to zero."""
        total = self.p_yes + self.p_no
        return self.p_yes / total if total > 0 else 0.5


def yes_no_scores(last_logits: "torch.Tensor", yes_ids: Sequence[int], no_ids: Sequence[int]) -> list[YesNoScore]:
    """Softmax over the full vocabulary (float32) at the answer position, summed per answer word."""
    import torch

    probs = torch.softmax(last_logits.float(), dim=-1)
    p_yes = probs[:, list(yes_ids)].sum(dim=-1).tolist()
    p_no = probs[:, list(no_ids)].sum(dim=-1).tolist()
    return [YesNoScore(p_yes=min(1.0, y), p_no=min(1.0, n)) for y, n in zip(p_yes, p_no)]


def derive_status(
    score: YesNoScore, answer: StructuredAnswer | None, *, min_yes_no_mass: float
) -> tuple[Literal["present", "absent", "unknown"], StatusSource | None]:
    """The status rule of the module docstring: Yes/No probabilities when meaningful, else the JSON, else unknown."""
    if score.mass >= min_yes_no_mass and score.p_yes + score.p_no > 0:
        return ("present" if score.confidence >= 0.5 else "absent"), "yes_no"
    if answer is not None:
        return ("present" if answer.present else "absent"), "json"
    return "unknown", None


# ----------------------------------------------------------------------------------------------------------
# Prompt assembly
# ----------------------------------------------------------------------------------------------------------


def concept_context(query: ConceptQuery) -> str:
    """The concept facts every prompt starts with (category, description, identity attributes)."""
    category = P.SMALL_CONCEPT_CATEGORY.format(category=query.category) if query.category else ""
    description = P.SMALL_CONCEPT_DESCRIPTION.format(description=query.description.strip()) if query.description.strip() else ""
    attributes = (
        P.SMALL_CONCEPT_ATTRIBUTES.format(attributes="; ".join(f"{k}: {v}" for k, v in query.attributes.items()))
        if query.attributes
        else ""
    )
    return P.SMALL_CONCEPT_CONTEXT.format(token=query.token, category=category, description=description, attributes=attributes)


def missing_identity(query: ConceptQuery) -> str | None:
    """Why ``recognition="likelihood"`` cannot score this concept (None when it can)."""
    if not query.category or not query.attributes:
        return (f"concept {query.token} has no category/identity attributes, which likelihood recognition "
                "scores; store its identity (ConceptMemory.update(identity=...)) or use a yes_no bank")
    return None


def identity_text(query: ConceptQuery) -> str:
    """'a star; colour: red; pattern: solid; accessory: none': the concept's category and identity
    attributes in the form the describe turn answers in (``recognition="likelihood"`` scores exactly this
    text). Raises ValueError for a concept without category or attributes (nothing to score)."""
    reason = missing_identity(query)
    if reason:
        raise ValueError(reason)
    return f"a {query.category}; " + "; ".join(f"{k}: {v}" for k, v in query.attributes.items())


def build_prompt(query: ConceptQuery, kind: Literal["recognize", "detect", "strict"], n_refs: int) -> str:
    """The user text for one concept (the images are placed before it by ``chat_inputs``)."""
    template = {"recognize": P.SMALL_RECOGNIZE, "detect": P.SMALL_DETECT, "strict": P.SMALL_DETECT_STRICT}[kind]
    references = " " + P.SMALL_REFERENCES.format(n_refs=n_refs, token=query.token) if n_refs else ""
    feedback = P.SMALL_FEEDBACK.format(feedback=query.feedback.strip()) if query.feedback and query.feedback.strip() else ""
    return template.format(
        context=concept_context(query), references=references, feedback=feedback, token=query.token, name=query.name
    )


# ----------------------------------------------------------------------------------------------------------
# The runtime
# ----------------------------------------------------------------------------------------------------------


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
    repairs: tuple[str, ...] = field(default_factory=tuple)
    description: str | None = None  # describe-then-decide: what the model said the image shows


class SmallVLM:
    """A loaded small VLM (+ optional adapter bank) that detects personal concepts in images.

    Thread-safe: one lock serializes calls, because the active adapter is state of the shared model.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        bank: AdapterBank | None = None,
        model_id: str | None = None,
        combine: CombineMode = "per_concept",
        locate: LocateMode = "auto",
        max_new_tokens: int = 128,
        batch_size: int = 16,
        min_yes_no_mass: float = 0.5,
        max_attempts: int = 2,
        generation_kwargs: dict[str, Any] | None = None,
        max_merged: int = 8,
        recognition: RecognitionMode | None = None,
        max_description_tokens: int = 24,
        likelihood_threshold: float | None = None,
    ) -> None:
        from slc.agent.loading import yes_no_token_ids

        if combine not in ("per_concept", "merge"):
            raise ValueError(f"combine must be 'per_concept' or 'merge', not {combine!r}")
        if locate not in ("auto", "always", "never"):
            raise ValueError(f"locate must be 'auto', 'always' or 'never', not {locate!r}")
        if max_attempts < 1 or batch_size < 1 or max_new_tokens < 1:
            raise ValueError("max_attempts, batch_size and max_new_tokens must be >= 1")
        self.base_model = model
        self.model = model  # becomes a PeftModel when the first adapter loads
        self.processor = processor
        self.bank = bank
        self.model_id = model_id or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        self.combine: CombineMode = combine
        self.locate: LocateMode = locate
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.min_yes_no_mass = min_yes_no_mass
        self.max_attempts = max_attempts
        self.generation_kwargs = dict(generation_kwargs or {})
        self.max_merged = max_merged
        # describe-then-decide: the protocol the bank's adapters were trained with unless set explicitly
        self.recognition: RecognitionMode = recognition or (bank.manifest.recognition if bank is not None else "yes_no")
        if self.recognition not in ("yes_no", "describe", "likelihood"):
            raise ValueError(f"recognition must be 'yes_no', 'describe' or 'likelihood', not {self.recognition!r}")
        self.max_description_tokens = max_description_tokens
        self.likelihood_threshold = likelihood_threshold or (bank.manifest.recognition_threshold if bank is not None else 0.5)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.yes_ids, self.no_ids = yes_no_token_ids(processor)
        self._loaded: list[str] = []
        self._merged: dict[tuple[str, ...], str] = {}
        self._lock = threading.RLock()
        self._logits_to_keep = True
        if bank is not None and bank.base_model and Path(bank.base_model).name != Path(str(self.model_id)).name:
            log.warning("adapter bank %s was trained on %s, the model is %s", bank.root, bank.base_model, self.model_id)

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike[str],
        *,
        device: Any = "auto",
        dtype: Any = "auto",
        bank: AdapterBank | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> "SmallVLM":
        """Load a checkpoint (ModelNotFoundError when it is neither a folder nor obtainable) and a bank."""
        from slc.agent.loading import load_vlm

        model, processor = load_vlm(path_or_id, device=device, dtype=dtype)
        if bank is not None and not isinstance(bank, AdapterBank):
            bank = AdapterBank.load(bank)
        return cls(model, processor, bank=bank, model_id=str(path_or_id), **kwargs)

    @classmethod
    def from_settings(cls, settings: "Settings | None" = None, **overrides: Any) -> "SmallVLM":
        """The small VLM the settings name (``small.*``); unset model = the locally built tiny Idefics3.

        The tiny model is random: it makes every code path run offline, its answers mean nothing.
        """
        from slc.agent.settings import get_settings

        s = settings or get_settings()
        if s.torch_threads:
            import torch

            torch.set_num_threads(s.torch_threads)
        model = s.small.model
        if model is None and s.small.adapter_bank is not None:  # a bank names the base it was trained on
            model = AdapterBank.load(s.small.adapter_bank).base_model or None
        if model is None:
            from slc.testing import build_tiny_vlm

            model = str(build_tiny_vlm("idefics3", s.models_dir / "tiny-vlm-idefics3", seed=0))
            log.warning("no small.model configured: using the random tiny model at %s (answers mean nothing)", model)
        kwargs: dict[str, Any] = dict(
            device=s.small.device,
            dtype=s.small.dtype,
            bank=s.small.adapter_bank,
            combine=s.small.combine,
            max_new_tokens=s.small.max_new_tokens,
            batch_size=s.small.batch_size,
            min_yes_no_mass=s.small.min_yes_no_mass,
            max_attempts=s.small.max_attempts,
        )
        kwargs.update(overrides)
        return cls.from_pretrained(model, **kwargs)

    # -- adapters ----------------------------------------------------------------------------------------

    @property
    def loaded_adapters(self) -> list[str]:
        """Bank adapters loaded into the PeftModel so far (each loaded once)."""
        return list(self._loaded)

    def load_adapter(self, name: str) -> None:
        """Load bank adapter ``name`` into the shared PeftModel (no-op when already loaded)."""
        with self._lock:
            if name in self._loaded:
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
            self._loaded.append(name)

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
            while len(self._merged) > self.max_merged:  # evict the oldest combination
                old_key = next(iter(self._merged))
                self.model.delete_adapter(self._merged.pop(old_key))
            return merged

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Run the block with ``adapter`` active (a bank or merged adapter name), or the base model for None."""
        with self._lock:
            if adapter is None:
                if self.model is self.base_model:
                    yield
                else:
                    with self.model.disable_adapter():
                        yield
                return
            if adapter not in self._loaded and adapter not in self._merged.values():
                self.load_adapter(adapter)
            self.model.set_adapter(adapter)
            yield

    def route(self, embedding: Any) -> str | None:
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
        if self.combine == "merge":
            distinct = sorted({a for a in routed if a is not None})
            key = self.merged_adapter(distinct) if distinct else None
            return {key: list(range(len(queries)))}
        groups: dict[str | None, list[int]] = {}
        for j, a in enumerate(routed):
            groups.setdefault(a, []).append(j)
        return groups

    # -- batched model calls -----------------------------------------------------------------------------

    def _inputs(self, images: list[list["Image"]], texts: list[str], history: list[list[tuple[str, str]]] | None = None) -> Any:
        from slc.agent.loading import chat_inputs

        return chat_inputs(self.processor, images, texts, device=self.device, dtype=self.dtype, history=history)

    def _last_logits(self, inputs: Any) -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            if self._logits_to_keep:
                try:
                    return self.model(**inputs, logits_to_keep=1).logits[:, -1, :]
                except TypeError:
                    self._logits_to_keep = False  # a model without the kwarg: compute every position
            return self.model(**inputs).logits[:, -1, :]

    def _generate(self, inputs: Any) -> list[str]:
        import torch

        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                **self.generation_kwargs,
            )
        new = out[:, inputs["input_ids"].shape[1] :]
        return tok.batch_decode(new, skip_special_tokens=True)

    # -- detection ---------------------------------------------------------------------------------------

    def detect(
        self, image: "ImageSource", concepts: Sequence[ConceptQuery], *, round: int = 0, locate: LocateMode | None = None
    ) -> list[Detection]:
        """Detections for each concept in one image (same order as ``concepts``)."""
        return self.detect_batch([image], concepts, round=round, locate=locate)[0]

    def scan(
        self,
        images: Sequence["ImageSource"],
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
        images: Sequence["ImageSource"],
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
        :func:`slc.memory.images.load_image` lazily, a batch at a time (500 decoded phone photos would not fit
        in memory); a bad one raises InvalidImageError (``on_invalid_image="raise"``) or gives its pairs
        status "unknown" with the reason in ``error`` (``"unknown"``). Reference images are read up front
        and always raise: they are the concept's own data, not the user's photo library.
        """
        from tqdm.auto import tqdm

        from slc.agent.images import load_image

        queries = list(concepts)
        if not queries:
            return [[] for _ in images]
        names = [q.name for q in queries]
        if len(set(names)) != len(names):
            raise ValueError(f"concept names must be unique in one call: {names}")
        if on_invalid_image not in ("raise", "unknown"):
            raise ValueError("on_invalid_image must be 'raise' or 'unknown'")
        locate = locate or self.locate
        bs = batch_size or self.batch_size
        refs = [[load_image(p) for p in q.reference_images] for q in queries]
        photos = _LazyImages(images, raise_errors=on_invalid_image == "raise", keep=2 * bs)
        pairs = [_Pair(i, j) for i in range(len(images)) for j in range(len(queries))]

        with self._lock:
            groups = self._groups(queries)
            labels = {j: key for key, idx in groups.items() for j in idx}
            bar = tqdm(total=len(pairs), desc="small VLM: scoring", unit="pair", disable=not progress, leave=False)
            try:
                for key, idx in groups.items():
                    in_group = set(idx)
                    members = [p for p in pairs if p.concept in in_group]
                    with self.using(key):
                        self._score_pairs(members, photos, refs, queries, bs, bar)
                        todo = [p for p in members if p.score is not None and self._wants_json(p, locate)]
                        if todo:
                            bar.set_description("small VLM: locating")
                        self._locate_pairs(todo, photos, refs, queries, bs)
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
        status, _ = derive_status(pair.score, None, min_yes_no_mass=self.min_yes_no_mass)  # type: ignore[arg-type]
        return status != "absent"

    def _batches(self, pairs: list[_Pair], photos: "_LazyImages", refs, bs: int) -> Iterator[tuple[list[_Pair], list[list["Image"]]]]:
        """Chunks of at most ``bs`` readable pairs with their images (reference photos first, query last)."""
        chunk: list[_Pair] = []
        imgs: list[list["Image"]] = []
        for p in pairs:
            image = photos.get(p.image)
            if image is None:  # unreadable and on_invalid_image="unknown": no model work for it
                continue
            chunk.append(p)
            imgs.append(refs[p.concept] + [image])
            if len(chunk) == bs:
                yield chunk, imgs
                chunk, imgs = [], []
        if chunk:
            yield chunk, imgs

    def _describe(self, chunk: list[_Pair], imgs: list[list["Image"]], refs, cache: dict[Any, str]) -> list[list[tuple[str, str]]]:
        """Describe-then-decide, first turn: the model's own greedy description of each pair's images.

        Generated once per image under the active adapter (``cache``, per adapter group) and shared by every
        concept asked about that image; pairs whose concept has reference photos get their own (the
        references are part of what is described).
        """
        from slc.agent.loading import describe_images

        keys = [(p.image, p.concept if refs[p.concept] else None) for p in chunk]
        todo = {k: im for k, im in zip(keys, imgs) if k not in cache}
        if todo:
            texts = describe_images(self.model, self.processor, list(todo.values()), max_new_tokens=self.max_description_tokens)
            cache.update(zip(todo, texts))
        for p, k in zip(chunk, keys):
            p.description = cache[k]
        return [[(P.SMALL_DESCRIBE_FIRST, cache[k])] for k in keys]

    def _likelihood_scores(self, chunk: list[_Pair], imgs: list[list["Image"]], queries) -> list[YesNoScore]:
        """``recognition="likelihood"``: P(the model describes the image as the concept's identity text).

        With P that probability (teacher-forced after SMALL_DESCRIBE_FIRST) and t the threshold
        (``likelihood_threshold``, from the bank's calibration): p_yes = P(1-t)/Z, p_no = t(1-P)/Z, so
        confidence >= 0.5 exactly when P >= t (for t = 0.5: p_yes = P, p_no = 1 - P).
        """
        import math

        from slc.agent.loading import description_logprobs

        texts = [identity_text(queries[p.concept]) for p in chunk]
        logps = description_logprobs(self.model, self.processor, imgs, texts)
        out = []
        t = self.likelihood_threshold
        for lp in logps:
            prob = min(1.0, max(0.0, math.exp(min(0.0, lp))))
            yes, no = prob * (1 - t), t * (1 - prob)
            z = yes + no
            out.append(YesNoScore(p_yes=yes / z, p_no=no / z) if z > 0 else YesNoScore(p_yes=0.5, p_no=0.5))
        return out

    def _score_pairs(self, pairs: list[_Pair], photos: "_LazyImages", refs, queries, bs: int, bar: Any) -> None:
        done = 0
        descriptions: dict[Any, str] = {}
        for chunk, imgs in self._batches(pairs, photos, refs, bs):
            if self.recognition == "likelihood":
                # a concept without identity attributes has nothing to score: its pairs stay unscored and
                # come back "unknown" with the reason (never a silent "absent"); the others are scored
                reasons = [missing_identity(queries[p.concept]) for p in chunk]
                for p, reason in zip(chunk, reasons):
                    p.error = reason
                ok = [i for i, reason in enumerate(reasons) if reason is None]
                scorable = [chunk[i] for i in ok]
                if scorable:
                    for p, sc in zip(scorable, self._likelihood_scores(scorable, [imgs[i] for i in ok], queries)):
                        p.score = sc
                bar.update(len(chunk))
                done += len(chunk)
                continue
            texts = [build_prompt(queries[p.concept], "recognize", len(refs[p.concept])) for p in chunk]
            history = self._describe(chunk, imgs, refs, descriptions) if self.recognition == "describe" else None
            scores = yes_no_scores(self._last_logits(self._inputs(imgs, texts, history)), self.yes_ids, self.no_ids)
            for p, s in zip(chunk, scores):
                p.score = s
            bar.update(len(chunk))
            done += len(chunk)
        bar.update(len(pairs) - done)  # unreadable images count as handled

    def _locate_pairs(self, pairs: list[_Pair], photos: "_LazyImages", refs, queries, bs: int) -> None:
        pending = list(pairs)
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                return
            kind: Literal["detect", "strict"] = "detect" if attempt == 1 else "strict"
            for chunk, imgs in self._batches(pending, photos, refs, bs):
                texts = [build_prompt(queries[p.concept], kind, len(refs[p.concept])) for p in chunk]
                for p, raw in zip(chunk, self._generate(self._inputs(imgs, texts))):
                    p.attempts, p.raw = attempt, raw
                    result = parse_detection_output(raw, queries[p.concept].name)
                    p.answer, p.error, p.repairs = result.answer, result.error, result.repairs
            failed = [p for p in pending if p.answer is None]
            if failed:
                log.info("small VLM: %d of %d replies unusable on attempt %d", len(failed), len(pending), attempt)
            pending = failed

    def _detection(
        self, p: _Pair, query: ConceptQuery, adapter: str | None, round: int, image_error: str | None
    ) -> Detection:
        if p.score is None:  # the query image could not be read
            return Detection(
                concept=query.name, status="unknown", confidence=0.5, adapter=adapter, round=round,
                prompt_version=P.SMALL_VLM_PROMPT_VERSION, error=image_error or p.error or "not scored",
            )  # fmt: skip
        status, source = derive_status(p.score, p.answer, min_yes_no_mass=self.min_yes_no_mass)
        a = p.answer
        present = status == "present"
        return Detection(
            concept=query.name,
            status=status,
            confidence=min(1.0, max(0.0, p.score.confidence)),
            location_absolute=a.location_absolute if a and present else None,
            location_relative=a.location_relative if a and present else None,
            evidence=a.concept_info if a else p.description,
            raw_output=p.raw,
            adapter=adapter,
            attempts=max(1, p.attempts),
            round=round,
            prompt_version=P.SMALL_VLM_PROMPT_VERSION,
            yes_no_mass=p.score.mass,
            status_source=source,
            json_present=a.present if a else None,
            parse_error=p.error if a is None and p.attempts else None,
        )


class _LazyImages:
    """Query images read on demand (newest ``keep`` kept decoded); unreadable ones recorded in ``errors``."""

    def __init__(self, sources: Sequence["ImageSource"], *, raise_errors: bool, keep: int) -> None:
        self.sources = sources
        self.raise_errors = raise_errors
        self.keep = max(1, keep)
        self.errors: dict[int, str] = {}
        self._cache: dict[int, "Image"] = {}

    def get(self, i: int) -> "Image | None":
        from slc.agent.errors import InvalidImageError
        from slc.agent.images import load_image

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
