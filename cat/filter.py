"""The CaT quality filter: keep a generated sample only if its image fits its role.

Rules (per sample, similarity = max cosine between the image's embedding and the concept's reference
embeddings; ``aggregate="mean"`` uses the normalized reference centroid instead):
- positive: kept iff similarity >= ``positive_min`` (else ``positive_too_dissimilar``: the generator lost
  the identity, e.g. a wrong colour);
- hard negative: kept iff ``hard_min <= similarity <= hard_max``; above the band it may not be truly
  different (``hard_too_similar``), below it is not hard / off-prompt (``hard_too_dissimilar``);
- easy negative: kept iff similarity <= ``easy_max`` (``easy_too_similar``);
- then, if a judge callable ``judge(image, question) -> bool`` is given (e.g. a VLM asked "does this image
  show ...?"), positives must show every identity leaf and hard negatives every *changed* leaf
  (``judge_rejected``).
The :class:`FilterReport` counts kept/dropped per reason and per difficulty.

Embedders: anything with ``dim`` and ``embed_images(images) -> (n, dim) float32, L2-normalized rows``
(the :class:`slc.memory.embedders.ImageEmbedder` protocol, e.g. ``HFImageEmbedder`` on a real CLIP). A
random tiny CLIP gives meaningless similarities, so for the concept world we ship
:class:`ObjectHistogramEmbedder`, a cheap deterministic embedder that looks at what defines a concept-world
identity (object colour, pattern ink, silhouette, accessory ink) and ignores the free dimensions
(background and clutter are unsaturated, so they are masked out).

Default thresholds — MEASURED with ObjectHistogramEmbedder on the concept world by
``python benchmarks/cat_filter_thresholds.py`` (64 px, 40 concepts, 3 references each at reference
diversity 0.3, plan diversity 0.5, 24 positives / 8 easy / 24 hard (k=1,2,3 equally) per concept,
seed 0); max-cosine to the references:
    group                          n    min     p1     p5    med    p95    max
    positive                     960  0.853  0.903  0.948  0.991  0.999  1.000
    hard-1                       324  0.351  0.361  0.377  0.889  0.977  0.996
    hard-2                       330  0.192  0.200  0.277  0.449  0.907  0.970
    hard-3                       306  0.172  0.182  0.191  0.304  0.440  0.538
    easy                         320  0.848  0.866  0.922  0.967  0.988  0.998
    planted wrong-colour pos.    960  0.330  0.351  0.367  0.476  0.518  0.614
=> ``positive_min = 0.74`` (about midway between the planted wrong-colour max 0.614 and the correct-positive
min 0.853: keeps 100% of positives, drops 100% of planted ones); ``hard_min = 0.15`` (below every
hard negative: only blank/off-prompt images fall under it); ``hard_max = 0.999`` (only near-copies of a reference: the changed leaf
did not show). It cannot be tighter: the hard-1 max 0.996 is a real, visible change (dotted -> checkered
on a small heart) that this embedder barely sees, so hard-1 and positives overlap in 0.85-0.996.
Easy negatives are not checked by default (``easy_max = 1.0``): this embedder barely sees the root
(shape), so easy negatives score like positives (median 0.967) — a real CLIP should be re-measured
(the script takes ``--clip PATH``) and its thresholds passed as a :class:`FilterConfig`. A random tiny
CLIP (slc.testing.build_tiny_clip) runs through the same code but its similarities mean nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

from slc.cat.edits import Sample
from slc.memory.histogram import ObjectHistogramEmbedder, _l2  # the embedder lives with the runtime's

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from slc.memory.embedders import ImageEmbedder

Judge = Callable[["Image.Image", str], bool]


class FilterConfig(BaseModel):
    """Thresholds of the filter (defaults measured with ObjectHistogramEmbedder, see module docstring)."""

    positive_min: float = Field(default=0.74, description="Positives need similarity >= this.")
    hard_min: float = Field(default=0.15, description="Hard negatives need similarity >= this ...")
    hard_max: float = Field(default=0.999, description="... and <= this (else not truly different).")
    easy_max: float = Field(default=1.0, description="Easy negatives need similarity <= this (1.0: no check).")
    aggregate: Literal["max", "mean"] = "max"
    embedder: str = Field(default=ObjectHistogramEmbedder.name, description="Which embedder these were set for.")


class FilterDecision(BaseModel):
    sample_id: str
    difficulty: str
    similarity: float
    kept: bool
    reason: str | None = Field(default=None, description="Why dropped (None when kept).")


class FilterReport(BaseModel):
    """How many samples were kept and dropped, per reason and per difficulty."""

    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    by_difficulty: dict[str, dict[str, int]] = Field(default_factory=dict)
    config: FilterConfig = Field(default_factory=FilterConfig)
    embedder: str = ""

    def add(self, decisions: Sequence[FilterDecision]) -> "FilterReport":
        for d in decisions:
            self.total += 1
            self.kept += d.kept
            row = self.by_difficulty.setdefault(d.difficulty, {"kept": 0, "dropped": 0})
            row["kept" if d.kept else "dropped"] += 1
            if not d.kept:
                self.dropped[d.reason or "unknown"] = self.dropped.get(d.reason or "unknown", 0) + 1
        return self

    def summary(self) -> str:
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items())) or "none"
        return f"kept {self.kept}/{self.total}; dropped: {drops}"


def judge_questions(sample: Sample) -> list[str]:
    """The yes/no questions a judge must answer 'yes' to for this sample to be kept."""
    from slc.agent import prompts

    t = sample.tree
    if sample.is_positive:
        dims = t.identity_dims()
    elif sample.is_hard:
        dims = sample.edit.changed("identity")
    else:
        return [prompts.CAT_JUDGE_QUESTION.format(attribute=f"a {t.root}")]
    qs = [prompts.CAT_JUDGE_QUESTION.format(attribute=f"a {t.root}")]
    qs += [prompts.CAT_JUDGE_QUESTION.format(attribute=f"a {t.root} whose {d} is {t.get(d)}") for d in dims]
    return qs


class QualityFilter:
    """Scores samples against a concept's reference images and decides keep/drop (see module docstring)."""

    def __init__(self, embedder: "ImageEmbedder", config: FilterConfig | None = None, judge: Judge | None = None):
        self.embedder = embedder
        self.config = config or FilterConfig()
        self.judge = judge

    def reference_matrix(self, references: Sequence["Image.Image"] | np.ndarray) -> np.ndarray:
        refs = references if isinstance(references, np.ndarray) else self.embedder.embed_images(list(references))
        if refs.shape[0] == 0:
            raise ValueError("the filter needs at least one reference image of the concept")
        return _l2(refs.mean(axis=0)) if self.config.aggregate == "mean" else _l2(refs)

    def similarities(self, references: Sequence["Image.Image"] | np.ndarray, images: Sequence["Image.Image"]) -> np.ndarray:
        refs = self.reference_matrix(references)
        emb = self.embedder.embed_images(list(images))
        return (emb @ refs.T).max(axis=1) if len(images) else np.zeros(0, dtype=np.float32)

    def decide(self, sample: Sample, similarity: float, image: "Image.Image | None" = None) -> FilterDecision:
        c = self.config
        reason = None
        if sample.is_positive and similarity < c.positive_min:
            reason = "positive_too_dissimilar"
        elif sample.is_hard and similarity > c.hard_max:
            reason = "hard_too_similar"
        elif sample.is_hard and similarity < c.hard_min:
            reason = "hard_too_dissimilar"
        elif sample.difficulty == "easy" and similarity > c.easy_max:
            reason = "easy_too_similar"
        if reason is None and self.judge is not None and image is not None:
            if not all(self.judge(image, q) for q in judge_questions(sample)):
                reason = "judge_rejected"
        return FilterDecision(sample_id=sample.id, difficulty=sample.difficulty, similarity=float(similarity),
                              kept=reason is None, reason=reason)

    def filter(self, references: Sequence["Image.Image"] | np.ndarray, samples: Sequence[Sample],
               images: Sequence["Image.Image"]) -> tuple[list[FilterDecision], FilterReport]:
        """Decisions for samples of ONE concept (same order as ``samples``) and their report."""
        if len(samples) != len(images):
            raise ValueError(f"{len(samples)} samples but {len(images)} images")
        sims = self.similarities(references, images)
        decisions = [self.decide(s, float(x), im) for s, x, im in zip(samples, sims, images)]
        report = FilterReport(config=self.config, embedder=getattr(self.embedder, "name", type(self.embedder).__name__))
        return decisions, report.add(decisions)


def merge_reports(reports: Sequence[FilterReport]) -> FilterReport:
    """One report over many concepts."""
    out = FilterReport(config=reports[0].config if reports else FilterConfig(),
                       embedder=reports[0].embedder if reports else "")
    for r in reports:
        out.total += r.total
        out.kept += r.kept
        out.dropped = dict(Counter(out.dropped) + Counter(r.dropped))
        for diff, row in r.by_difficulty.items():
            dst = out.by_difficulty.setdefault(diff, {"kept": 0, "dropped": 0})
            dst["kept"] += row["kept"]
            dst["dropped"] += row["dropped"]
    return out


__all__ = ["FilterConfig", "FilterDecision", "FilterReport", "Judge", "ObjectHistogramEmbedder", "QualityFilter",
           "judge_questions", "merge_reports"]
