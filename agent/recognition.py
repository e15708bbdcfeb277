"""How a concept is recognized in a photo: ONE interface, used by the runtime, the training evaluator and
the eval small mode.

A :class:`RecognitionProtocol` turns (query photo, concept, the concept's reference photos) into Yes/No
probabilities, for a batch of such pairs at once, on a :class:`ModelHandle` (the model in the state to
use: the runtime passes its model with the routed adapter active, the training evaluator the model being
trained). The protocols:

- ``yes_no`` (:class:`YesNoRecognition`): the RECOGNIZE prompt, scored and not generated: one forward pass;
  at the answer position the softmax over the whole vocabulary is summed over every single-token spelling
  of Yes and of No (:func:`yes_no_token_ids`).
- ``describe`` (:class:`DescribeRecognition`): describe-then-decide. The model first gives its own greedy
  description of the image (SMALL_DESCRIBE_FIRST, once per image of a batch), then RECOGNIZE is asked as the
  second turn and read as above.
- ``likelihood`` (:class:`LikelihoodRecognition`): no question. P = the model's probability of describing the
  image as the concept's identity text (:func:`~slc.agent.concept_prompts.identity_text`, teacher-forced, one
  forward pass); with the calibrated threshold t, p_yes = P(1-t)/Z and p_no = t(1-P)/Z, so the concept is
  present exactly when P >= t. The learning benchmark (slc.training.benchmark) measures why: a tiny model
  learns to describe far sooner than it learns to compare a description with the concept's text.
- ``reference`` (:class:`ReferenceRecognition`): the decision depends on the concept's reference PHOTOS, not
  on its text: the small VLM's image tokens of the query and of the references go through the bank's learned
  :class:`~slc.agent.reference.ReferenceHead`, which says whether they show the same individual (so a
  look-alike with the same description is rejected). Each photo is encoded once per call, whatever the
  number of concepts or pairs it appears in. It also says WHERE, without generation
  (:meth:`ReferenceRecognition.locate`: an occlusion map of the photo, candidate regions scored by the head
  alone and blanked, the best region's 3x3 cell; see :mod:`slc.agent.reference`).

A protocol is built from the detector's config and the adapter bank (:func:`recognition_protocol`), so one
that carries calibration or learned parameters reads them from the bank's manifest or folder
(:meth:`RecognitionProtocol.from_config`); a pair carries the concept's reference photos, already decoded.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from slc.agent import prompts as P
from slc.agent.chat_inputs import Turn, chat_inputs
from slc.agent.concept_prompts import build_prompt, identity_text, missing_identity
from slc.agent.detection import ConceptQuery
from slc.agent.detector import DetectorConfig, RecognitionName
from slc.agent.errors import UnsupportedModelError
from slc.agent.inference import generate_text, last_position_logits, sequence_logprobs

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image
    from transformers import BatchFeature, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

    from slc.agent.adapters import AdapterBank
    from slc.agent.chat_inputs import ImagesArg
    from slc.agent.reference import ReferenceHead

PassKind = Literal["forward", "generate"]
#: Folder of an adapter bank that holds its reference head (slc.agent.reference).
REFERENCE_HEAD_DIR = "reference_head"
#: Called once per model pass made through a :class:`ModelHandle` (how the evals count small-VLM work).
PassHook = Callable[[PassKind], None]

YES_WORDS = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO_WORDS = ("No", " No", "no", " no", "NO", " NO")


# ----------------------------------------------------------------------------------------------------------
# Reading Yes/No off the vocabulary
# ----------------------------------------------------------------------------------------------------------


def single_token_ids(tokenizer: PreTrainedTokenizerBase | ProcessorMixin, spellings: Sequence[str]) -> list[int]:
    """Ids of the spellings that are one token each (a processor is accepted for its tokenizer), no repeats."""
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    ids: list[int] = []
    for word in spellings:
        encoded = tok.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    return ids


def yes_no_token_ids(tokenizer: PreTrainedTokenizerBase | ProcessorMixin) -> tuple[list[int], list[int]]:
    """Ids of every single-token spelling of "Yes" and of "No" (with/without leading space, any case).

    Why lists: depending on the tokenizer and the template, the first answer token may be "Yes" or " Yes";
    the detector sums the probabilities of all spellings, so it is robust to both. Raises
    :class:`UnsupportedModelError` when the vocabulary has no single-token "Yes" or "No".
    """
    yes, no = single_token_ids(tokenizer, YES_WORDS), single_token_ids(tokenizer, NO_WORDS)
    if not yes or not no or set(yes) & set(no):
        raise UnsupportedModelError(
            f"The tokenizer has no distinct single-token Yes/No (yes={yes}, no={no}); the detector cannot score it"
        )
    return yes, no


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


def yes_no_scores(last_logits: torch.Tensor, yes_ids: Sequence[int], no_ids: Sequence[int]) -> list[YesNoScore]:
    """Softmax over the full vocabulary (float32) at the answer position, summed per answer word."""
    import torch

    probs = torch.softmax(last_logits.float(), dim=-1)
    p_yes = probs[:, list(yes_ids)].sum(dim=-1).tolist()
    p_no = probs[:, list(no_ids)].sum(dim=-1).tolist()
    return [YesNoScore(p_yes=min(1.0, y), p_no=min(1.0, n)) for y, n in zip(p_yes, p_no)]


# ----------------------------------------------------------------------------------------------------------
# What a protocol scores with, and what it scores
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelHandle:
    """A small VLM in the state to score with (its active adapter), with what every pass needs.

    Every model pass made through the handle goes through :mod:`slc.agent.inference` and is reported to
    ``on_pass`` (the runtime's public pass hooks, :meth:`slc.agent.small_vlm.SmallVLM.add_pass_hook`).
    """

    model: PreTrainedModel
    processor: ProcessorMixin
    device: torch.device
    dtype: torch.dtype | None
    yes_ids: tuple[int, ...]
    no_ids: tuple[int, ...]
    on_pass: PassHook | None = None

    @classmethod
    def of(cls, model: PreTrainedModel, processor: ProcessorMixin, *, on_pass: PassHook | None = None) -> ModelHandle:
        """The handle of ``model`` as it is now (device of its weights, dtype of its floating weights)."""
        yes, no = yes_no_token_ids(processor)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        return cls(model, processor, next(model.parameters()).device, dtype, tuple(yes), tuple(no), on_pass)

    def inputs(self, images: ImagesArg, text: str | Sequence[str], **kwargs: object) -> BatchFeature:
        """:func:`~slc.agent.chat_inputs.chat_inputs` on this model's device and dtype."""
        return chat_inputs(self.processor, images, text, device=self.device, dtype=self.dtype, **kwargs)

    def last_logits(self, inputs: BatchFeature) -> torch.Tensor:
        self._passed("forward")
        return last_position_logits(self.model, inputs)

    def generate(self, inputs: BatchFeature, *, max_new_tokens: int, **generate_kwargs: object) -> list[str]:
        self._passed("generate")
        return generate_text(self.model, self.processor, inputs, max_new_tokens=max_new_tokens, **generate_kwargs)

    def sequence_logprobs(self, inputs: BatchFeature, labels: torch.Tensor) -> list[float]:
        self._passed("forward")
        return sequence_logprobs(self.model, inputs, labels)

    def image_tokens(self, images: Sequence[Image]) -> list[torch.Tensor]:
        """The image tokens the language model would read for each photo (vision tower + connector only)."""
        import torch

        from slc.agent.reference import image_tokens

        self._passed("forward")
        with torch.inference_mode():
            return image_tokens(self.model, self.processor, images)

    def _passed(self, kind: PassKind) -> None:
        if self.on_pass is not None:
            self.on_pass(kind)


@dataclass(frozen=True)
class RecognitionPair:
    """One (photo, concept) question, with the concept's reference photos already decoded."""

    image: Image
    image_key: Hashable  # pairs with the same key show the same photo (describe describes it once)
    query: ConceptQuery
    references: tuple[Image, ...] = ()

    @property
    def images(self) -> list[Image]:
        """What the model is shown, in prompt order: the reference photos, then the photo to check."""
        return [*self.references, self.image]


class RecognitionResult(BaseModel):
    """A protocol's answer for one pair: the Yes/No score, or why there is none."""

    model_config = ConfigDict(frozen=True)

    score: YesNoScore | None
    description: str | None = Field(default=None, description="describe: the model's own description (evidence).")
    error: str | None = Field(default=None, description="Why the pair could not be scored.")


class RegionScore(BaseModel):
    """One candidate region of a photo, as the reference head judged it for one concept."""

    model_config = ConfigDict(frozen=True)

    cell: str = Field(description="3x3 cell of the region's centre ('top left' ... 'bottom right').")
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 as fractions of width and height.")
    p_alone: float = Field(description="P(same individual) with only this region left in the photo.")
    p_blanked: float = Field(description="P(same individual) with this region blanked.")

    @property
    def score(self) -> float:
        """How much the concept is here: recognised with the region alone, and lost without it."""
        return self.p_alone - self.p_blanked


class LocationResult(BaseModel):
    """Where a protocol found a concept in a photo without generation: the chosen cell and why."""

    model_config = ConfigDict(frozen=True)

    cell: str | None = Field(description="3x3 cell of the best region; None when the photo offered no region.")
    regions: tuple[RegionScore, ...] = Field(default=(), description="Every candidate region, best first.")

    @property
    def evidence(self) -> str:
        """One line for traces and the tool's text: each region's cell and its two probabilities."""
        if not self.regions:
            return "where: no region of the photo changes what the reference head sees"
        shown = [f"{r.cell} (alone {r.p_alone:.2f}, blanked {r.p_blanked:.2f})" for r in self.regions]
        return ("where (reference head; P(same) with the region alone, blanked): " + shown[0] + " chosen"
                + "".join(f"; {x}" for x in shown[1:]))


class RecognitionProtocol(BaseModel, ABC):
    """The recognition rule: (photo, concept, reference photos) -> Yes/No probabilities, batched.

    A protocol object holds what it learned or was calibrated with (fields, read from the adapter bank by
    :meth:`from_config`) and nothing of one call: :meth:`score` is one batch, and the caller batches.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: ClassVar[RecognitionName]
    #: True when the decision needs each concept's reference photos in every pass (callers then put them into
    #: the ConceptQuery: slc.memory.queries.concept_query(with_reference_images=True)).
    uses_references: ClassVar[bool] = False

    @classmethod
    def from_config(cls, config: DetectorConfig, bank: AdapterBank | None) -> RecognitionProtocol:
        """The protocol as ``config`` sets it and ``bank`` (its manifest, its folder) calibrated it."""
        return cls()

    @abstractmethod
    def score(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[RecognitionResult]:
        """One result per pair, in order."""

    @property
    def locates(self) -> bool:
        """True when :meth:`locate` says where a concept is without generation (the runtime then generates no
        detection JSON); False: locations come from the generated JSON."""
        return False

    def locate(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[LocationResult | None]:
        """Where each pair's concept is in its photo (None: it cannot say, e.g. no reference photos)."""
        raise NotImplementedError(f"the {self.name} protocol locates by generating the detection JSON")


class YesNoRecognition(RecognitionProtocol):
    """The concept question, answered by the Yes/No probabilities at the answer position."""

    name: ClassVar[RecognitionName] = "yes_no"

    def score(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[RecognitionResult]:
        return [RecognitionResult(score=s) for s in _ask(model, pairs, None)]


class DescribeRecognition(RecognitionProtocol):
    """Describe-then-decide: the model's own description as the first turn, then the concept question."""

    name: ClassVar[RecognitionName] = "describe"
    max_new_tokens: int = Field(default=24, ge=1, description="Token limit of the description.")

    @classmethod
    def from_config(cls, config: DetectorConfig, bank: AdapterBank | None) -> DescribeRecognition:
        return cls(max_new_tokens=config.max_description_tokens)

    def describe(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[str]:
        """The model's greedy description of each pair's images, generated once per photo of the batch (a
        pair whose concept has reference photos gets its own: they are part of what is described)."""
        keys = [(p.image_key, p.query.name if p.references else None) for p in pairs]
        first = {key: p for key, p in zip(keys, pairs)}
        inputs = model.inputs([p.images for p in first.values()], [P.SMALL_DESCRIBE_FIRST] * len(first))
        texts = dict(zip(first, (t.strip() for t in model.generate(inputs, max_new_tokens=self.max_new_tokens))))
        return [texts[key] for key in keys]

    def decide(self, model: ModelHandle, pairs: Sequence[RecognitionPair], descriptions: Sequence[str]) -> list[RecognitionResult]:
        """The concept question after the given descriptions (the model's own, or the true ones: how well the
        decision alone works)."""
        history = [[(P.SMALL_DESCRIBE_FIRST, d)] for d in descriptions]
        return [RecognitionResult(score=s, description=d) for s, d in zip(_ask(model, pairs, history), descriptions)]

    def score(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[RecognitionResult]:
        return self.decide(model, pairs, self.describe(model, pairs))


class LikelihoodRecognition(RecognitionProtocol):
    """P(the model describes the image as the concept's identity text), against a calibrated threshold."""

    name: ClassVar[RecognitionName] = "likelihood"
    threshold: float = Field(default=0.5, gt=0, lt=1, description="P at and above which the concept is present.")

    @classmethod
    def from_config(cls, config: DetectorConfig, bank: AdapterBank | None) -> LikelihoodRecognition:
        """``config.likelihood_threshold``, else the threshold the bank was calibrated with, else 0.5."""
        calibrated = bank.manifest.recognition_threshold if bank is not None else None
        return cls(threshold=config.likelihood_threshold or calibrated or 0.5)

    def logprobs(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[float]:
        """log P(identity text | images, SMALL_DESCRIBE_FIRST) per pair: one forward pass, teacher-forced.

        Raises ValueError for a concept without identity (see :func:`missing_identity`).
        """
        inputs = model.inputs([p.images for p in pairs], [P.SMALL_DESCRIBE_FIRST] * len(pairs),
                              answer=[identity_text(p.query) for p in pairs], padding_side="right")
        labels = inputs.pop("labels")
        return model.sequence_logprobs(inputs, labels)

    def score(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[RecognitionResult]:
        """A concept without identity attributes has nothing to score: its result says why (never a silent
        "absent"), and the other pairs of the batch are scored."""
        reasons = [missing_identity(p.query) for p in pairs]
        scorable = [p for p, reason in zip(pairs, reasons) if reason is None]
        scores = iter(self._scores(self.logprobs(model, scorable)) if scorable else [])
        return [RecognitionResult(score=None, error=reason) if reason else RecognitionResult(score=next(scores))
                for reason in reasons]

    def _scores(self, logprobs: Sequence[float]) -> list[YesNoScore]:
        """p_yes = P(1-t)/Z, p_no = t(1-P)/Z: confidence >= 0.5 exactly when P >= t (t = 0.5: p_yes = P)."""
        t = self.threshold
        out = []
        for lp in logprobs:
            prob = min(1.0, max(0.0, math.exp(min(0.0, lp))))
            yes, no = prob * (1 - t), t * (1 - prob)
            z = yes + no
            out.append(YesNoScore(p_yes=yes / z, p_no=no / z) if z > 0 else YesNoScore(p_yes=0.5, p_no=0.5))
        return out


class ReferenceRecognition(RecognitionProtocol):
    """Same individual as the concept's reference photos? The bank's learned head over the VLM's image tokens."""

    name: ClassVar[RecognitionName] = "reference"
    uses_references: ClassVar[bool] = True
    head: ReferenceHead
    by_head: bool = Field(default=True, description="Locate with the head (DetectorConfig.reference_locate).")
    grid: int = Field(default=6, ge=2, description="Tiles per side of the occlusion map (locate_grid).")
    peak: float = Field(default=0.1, ge=0, le=1, description="Peak share of the map's maximum (locate_peak).")
    radius: int = Field(default=1, ge=0, description="Tiles around a peak in its region (locate_radius).")

    @classmethod
    def from_config(cls, config: DetectorConfig, bank: AdapterBank | None) -> ReferenceRecognition:
        """The head stored in the bank (``reference_head/``, with its calibrated threshold), locating as
        ``config`` says."""
        from slc.agent.errors import AdapterBankError
        from slc.agent.reference import ReferenceHead

        if bank is None:
            raise AdapterBankError("reference recognition needs an adapter bank with a trained reference head "
                                   "(SLC_SMALL__ADAPTER_BANK; `slc train identity` makes one)")
        return cls.with_head(ReferenceHead.load(bank.root / REFERENCE_HEAD_DIR), by_head=config.reference_locate,
                             grid=config.locate_grid, peak=config.locate_peak, radius=config.locate_radius)

    @classmethod
    def with_head(cls, head: ReferenceHead, **settings: object) -> ReferenceRecognition:
        """The protocol over a head in memory (training evaluates the head it is training)."""
        from slc.agent.reference import ReferenceHead

        cls.model_rebuild(_types_namespace={"ReferenceHead": ReferenceHead})  # torch loads only when this is used
        return cls(head=head, **settings)

    @property
    def locates(self) -> bool:
        return self.by_head

    def signatures(self, model: ModelHandle, photos: Sequence[Image]) -> torch.Tensor:
        """(photos, k): what the head compares, one row per photo."""
        import torch

        with torch.inference_mode():
            return self.head.signature(*self.head.describe(model.image_tokens(photos)))

    def score(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[RecognitionResult]:
        """A concept without reference photos cannot be compared: its result says why; each query photo and each
        concept's set of references is encoded once for the whole batch."""
        import torch

        usable = [p for p in pairs if p.references]
        if usable:
            queries = {p.image_key: p.image for p in usable}
            ref_sets = {id(p.references): p.references for p in usable}
            flat = [im for refs in ref_sets.values() for im in refs]
            sig = self.signatures(model, [*queries.values(), *flat])
            q_sig = dict(zip(queries, sig[: len(queries)]))
            r_sig, start = {}, len(queries)
            for key, refs in ref_sets.items():
                r_sig[key] = sig[start : start + len(refs)].mean(0)
                start += len(refs)
            with torch.inference_mode():
                logits = self.head.score(torch.stack([q_sig[p.image_key] for p in usable]),
                                         torch.stack([r_sig[id(p.references)] for p in usable]))
            probs = iter(torch.sigmoid(logits - self.head.config.threshold).tolist())
        out = []
        for p in pairs:
            if not p.references:
                out.append(RecognitionResult(score=None, error=f"concept {p.query.token} has no reference photos to "
                                             "compare with (reference recognition needs them)"))
                continue
            prob = next(probs)
            out.append(RecognitionResult(score=YesNoScore(p_yes=prob, p_no=1.0 - prob)))
        return out

    def locate(self, model: ModelHandle, pairs: Sequence[RecognitionPair]) -> list[LocationResult | None]:
        """Where each pair's concept is, by the head alone (the method in :mod:`slc.agent.reference`).

        Per photo, whatever the number of its concepts: one vision pass over the photo and its ``grid`` x
        ``grid`` tile-blanked copies (the occlusion map: how far the head's embedding moves), then one over
        each candidate region alone and blanked; per concept only the head's comparator runs. Each concept's
        reference set is encoded once per call. A pair without reference photos gets None.
        """
        import torch

        from slc.agent.reference import blanked, border_colour, kept, occlusion_regions, tile_boxes

        usable = [p for p in pairs if p.references]
        ref_sets = {id(p.references): p.references for p in usable}
        r_sig: dict[int, torch.Tensor] = {}
        if ref_sets:
            sig = self.signatures(model, [im for refs in ref_sets.values() for im in refs])
            start = 0
            for key, refs in ref_sets.items():
                r_sig[key] = sig[start : start + len(refs)].mean(0)
                start += len(refs)
        photos: dict[Hashable, list[RecognitionPair]] = {}
        for p in usable:
            photos.setdefault(p.image_key, []).append(p)
        found: dict[int, LocationResult] = {}
        tiles = tile_boxes(self.grid)
        for asked in photos.values():
            image = asked[0].image.convert("RGB")
            fill = border_colour(image)
            with torch.inference_mode():
                emb, _ = self.head.describe(model.image_tokens([image, *(blanked(image, t, fill) for t in tiles)]))
            regions = occlusion_regions((emb[1:] - emb[0]).norm(dim=-1), peak=self.peak, radius=self.radius)
            if not regions:
                found.update({id(p): LocationResult(cell=None) for p in asked})
                continue
            views = self.signatures(model, [kept(image, r.box, fill) for r in regions]
                                    + [blanked(image, r.box, fill) for r in regions])
            n = len(regions)
            for p in asked:
                ref = r_sig[id(p.references)]
                with torch.inference_mode():
                    probs = torch.sigmoid(self.head.score(views, ref.expand_as(views)) - self.head.config.threshold)
                scored = sorted((RegionScore(cell=r.cell, box=r.box, p_alone=float(probs[i]),
                                             p_blanked=float(probs[n + i])) for i, r in enumerate(regions)),
                                key=lambda r: -r.score)
                found[id(p)] = LocationResult(cell=scored[0].cell, regions=tuple(scored))
        return [found.get(id(p)) for p in pairs]


def _ask(model: ModelHandle, pairs: Sequence[RecognitionPair], history: Sequence[Sequence[Turn]] | None) -> list[YesNoScore]:
    """The RECOGNIZE question for each pair (after ``history``), read as Yes/No probabilities."""
    texts = [build_prompt(p.query, "recognize", len(p.references)) for p in pairs]
    inputs = model.inputs([p.images for p in pairs], texts, history=history)
    return yes_no_scores(model.last_logits(inputs), model.yes_ids, model.no_ids)


PROTOCOLS: dict[RecognitionName, type[RecognitionProtocol]] = {
    cls.name: cls for cls in (YesNoRecognition, DescribeRecognition, LikelihoodRecognition, ReferenceRecognition)
}


def recognition_protocol(config: DetectorConfig, bank: AdapterBank | None = None) -> RecognitionProtocol:
    """The protocol ``config.recognition`` names, else the one the bank's adapters were trained for, else yes_no."""
    name = config.recognition or (bank.manifest.recognition if bank is not None else "yes_no")
    return PROTOCOLS[name].from_config(config, bank)


__all__ = [
    "PROTOCOLS", "REFERENCE_HEAD_DIR", "DescribeRecognition", "LikelihoodRecognition", "LocationResult", "ModelHandle",
    "PassHook", "PassKind", "RecognitionPair", "RecognitionProtocol", "RecognitionResult", "ReferenceRecognition",
    "RegionScore",
    "YesNoRecognition", "YesNoScore",
    "recognition_protocol", "single_token_ids", "yes_no_scores", "yes_no_token_ids",
]
