"""Typed benchmark items, and what a loader reports about the file it read.

Why typed items: every benchmark of the field ships its own JSON shape. The runner and the metrics should not
care: each loader turns one file (or folder) into a list of four item kinds (multiple choice, recognition,
open VQA, caption) plus a :class:`LoadReport` that says what was read, what was removed (repeats, by how
exact they are), which items are degenerate, and which images are missing under the user's dataset root.
Missing images are reported, never raised: annotation files are public, images often are not.

Item ids are stable across runs (derived from the file's own keys), so results can be resumed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from slc.agent.errors import SLCError
from slc.evals.paths import explain_missing, resolve_image
from slc.evals.quality import RepeatLog, degenerate_reason

IMAGE_TAG = "<image>"


class BenchmarkFormatError(SLCError, ValueError):
    """An annotation file whose shape is not the one its loader reads (wrong file for this benchmark?)."""


# ----------------------------------------------------------------------------------------------------------
# Items
# ----------------------------------------------------------------------------------------------------------
class _ItemBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable id, unique within the benchmark (derived from the file's own keys).")
    benchmark: str
    concepts: list[str] = Field(default_factory=list, description="Concept names the item is about.")
    question: str = Field(description="The question stem with the concept written as <name>; no <image> tag.")
    images: list[str] = Field(default_factory=list, description="Image paths as the annotation writes them.")
    system: str | None = Field(default=None, description="System text shipped with the item (SLC files carry one).")
    group: str | None = Field(default=None, description="Image situation for breakdowns: single / multi / text.")
    kind: str | None = Field(default=None, description="Answer kind for breakdowns (positive, negative: why).")
    cluster: str | None = Field(default=None, description=(
        "Items that share it are not independent (same concept or scenario): confidence intervals resample "
        "clusters. None = the item's concepts."))

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    @property
    def cluster_key(self) -> str:
        return self.cluster or "+".join(sorted(self.concepts)) or self.id


class ChoiceItem(_ItemBase):
    """A multiple-choice question; scored by parsing ONE option letter from the reply."""

    task: Literal["choice"] = "choice"
    options: dict[str, str] = Field(description="Letter -> option text, in display order.")
    answer: str = Field(description="The correct letter.")
    shuffled_from: str | None = Field(default=None, description="Id of the original item when options were shuffled.")


class RecognitionItem(_ItemBase):
    """Is (are) the concept(s) in the image? ``expected`` is the yes/no answer."""

    task: Literal["recognition"] = "recognition"
    expected: bool
    present: dict[str, bool] = Field(default_factory=dict, description="Per-concept presence when the file has it.")


class OpenVQAItem(_ItemBase):
    """A free-text question scored against a reference answer (MC-LLaVA: character BLEU)."""

    task: Literal["open_vqa"] = "open_vqa"
    reference: str


class CaptionItem(_ItemBase):
    """Caption an image; ``present`` are the concepts in it, ``concepts`` the ones the model was told about."""

    task: Literal["caption"] = "caption"
    present: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list, description="Ground-truth captions when the dataset has them.")


Item = Annotated[Union[ChoiceItem, RecognitionItem, OpenVQAItem, CaptionItem], Field(discriminator="task")]


# ----------------------------------------------------------------------------------------------------------
# Load reports
# ----------------------------------------------------------------------------------------------------------
class LoadReport(BaseModel):
    """What a loader read, removed and could not find: printed by the CLI and kept beside the results."""

    benchmark: str
    source: str
    items: int = 0
    concepts: int = 0
    clusters: int = 0
    by_answer: dict[str, int] = Field(default_factory=dict)
    by_group: dict[str, int] = Field(default_factory=dict)
    duplicates_removed: int = 0
    repeats: dict[str, int] = Field(default_factory=dict, description="Removed repeats by how exact they are.")
    degenerate: dict[str, str] = Field(default_factory=dict, description="Kept items no reply text can get right: "
                                       "id -> why.")
    notes: list[str] = Field(default_factory=list)
    root: str | None = Field(default=None, description="Dataset root the images were looked up under.")
    images_referenced: int = 0
    images_missing: list[str] = Field(default_factory=list)
    items_with_missing_images: int = 0

    def summary(self) -> str:
        parts = [f"{self.benchmark}: {self.items} items, {self.concepts} concepts"]
        if self.by_answer:
            parts.append("answers " + ", ".join(f"{k}={v}" for k, v in sorted(self.by_answer.items())))
        if self.duplicates_removed:
            parts.append(f"{self.duplicates_removed} repeats removed")
        if self.degenerate:
            parts.append(f"{len(self.degenerate)} degenerate")
        if not self.images_referenced:
            parts.append("no images")
        elif self.root is None:
            parts.append("images not checked (no --root)")
        else:
            parts.append(f"{len(self.images_missing)} of {self.images_referenced} images missing under {self.root}")
        return "; ".join(parts)


class LoadedBenchmark(BaseModel):
    items: list[Item]
    report: LoadReport

    def available(self) -> list[Item]:
        """Items whose images are all present (all items when no root was given)."""
        missing = set(self.report.images_missing)
        return [it for it in self.items if not missing.intersection(it.images)]

    def path_problem(self) -> str | None:
        """Why nothing can be scored, when a root was given and not one referenced image is under it."""
        rep = self.report
        if rep.root is None or not rep.images_referenced or len(rep.images_missing) < rep.images_referenced:
            return None
        if self.available():
            return None  # text-only items still score
        return explain_missing(Path(rep.root), rep.images_missing, rep.images_referenced)


def finish_load(benchmark: str, source: Path, items: Sequence[Item], root: Path | None, *,
                repeats: RepeatLog | None = None, notes: Sequence[str] = ()) -> LoadedBenchmark:
    """Fill a loader's report: counts, repeats, degenerate items, and the image check (one stat per image)."""
    ids = Counter(it.id for it in items)
    dup_ids = [i for i, n in ids.items() if n > 1]
    if dup_ids:
        raise BenchmarkFormatError(f"{source}: item ids not unique, e.g. {dup_ids[:3]}")
    report = LoadReport(benchmark=benchmark, source=str(source), items=len(items))
    report.concepts = len({c for it in items for c in it.concepts})
    report.clusters = len({it.cluster_key for it in items})
    answers: Counter[str] = Counter()
    for it in items:
        if isinstance(it, ChoiceItem):
            answers[it.answer] += 1
            why = degenerate_reason(it.options)
            if why:
                report.degenerate[it.id] = why
        elif isinstance(it, RecognitionItem):
            answers["yes" if it.expected else "no"] += 1
    report.by_answer = dict(answers)
    report.by_group = dict(Counter(it.group for it in items if it.group))
    report.notes = list(notes)
    if repeats is not None and repeats.total:
        report.duplicates_removed = repeats.total
        report.repeats = dict(repeats.counts)
        report.notes.insert(0, str(repeats.note()))
    if report.degenerate:
        shown = "; ".join(f"{k}: {v}" for k, v in list(report.degenerate.items())[:5])
        report.notes.append(f"{len(report.degenerate)} degenerate items kept but flagged (no reply can pick the "
                            f"right option by its text): {shown}")
    images = sorted({p for it in items for p in it.images})
    report.images_referenced = len(images)
    if root is not None:
        report.root = str(root)
        report.images_missing = [p for p in images if resolve_image(root, p) is None]
        miss = set(report.images_missing)
        report.items_with_missing_images = sum(1 for it in items if miss.intersection(it.images))
    return LoadedBenchmark(items=list(items), report=report)


__all__ = ["BenchmarkFormatError", "CaptionItem", "ChoiceItem", "IMAGE_TAG", "Item", "LoadReport", "LoadedBenchmark",
           "OpenVQAItem", "RecognitionItem", "finish_load"]
