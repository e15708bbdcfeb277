"""What one reply to one item counts for, and every reported metric as a function of those counts.

Why counts: a score over a set of items (accuracy, weighted recognition, caption F1, mean char-BLEU) is a
ratio of sums of per-item counts. Writing each metric once over summed counts gives, from one definition,
the score on all items, on any breakdown subset, the bootstrap interval (:mod:`slc.evals.intervals`) and
the expected value of a trivial baseline (the mean of its possible replies' counts,
:mod:`slc.evals.baselines`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slc.evals.items import CaptionItem, ChoiceItem, Item, OpenVQAItem, RecognitionItem
from slc.evals.metrics import caption_f1, char_bleu, concept_mentions
from slc.evals.parsing import parse_option_letter, parse_yes_no


def score_reply(item: Item, reply: str | None) -> tuple[str | bool | None, bool | None, float | None]:
    """(parsed answer, correct, score) of one reply; captions are scored over the whole set, not here."""
    if isinstance(item, ChoiceItem):
        letter = parse_option_letter(reply, item.options)
        ok = letter == item.answer
        return letter, ok, float(ok)
    if isinstance(item, RecognitionItem):
        yn = parse_yes_no(reply)
        ok = yn is not None and yn == item.expected
        return yn, ok, float(ok)
    if isinstance(item, OpenVQAItem):
        return None, None, char_bleu(item.reference, reply or "")
    if isinstance(item, CaptionItem):
        named = sorted(concept_mentions(reply or "", item.concepts))
        return ",".join(named), None, None
    raise TypeError(type(item).__name__)


def item_counts(item: Item, reply: str | None) -> np.ndarray:
    """The counts one reply contributes (None = no reply: wrong, denominators still count).

    choice: (correct, 1); recognition: (right on a positive, positive, right on a negative, negative);
    open VQA: (char-BLEU, 1); caption: (told concepts named and present, present, told concepts named,
    share of present concepts named, has present concepts).
    """
    if isinstance(item, ChoiceItem):
        return np.array([float(parse_option_letter(reply, item.options) == item.answer), 1.0])
    if isinstance(item, RecognitionItem):
        right = float(parse_yes_no(reply) == item.expected)
        pos = float(item.expected)
        return np.array([right * pos, pos, right * (1 - pos), 1 - pos])
    if isinstance(item, OpenVQAItem):
        return np.array([char_bleu(item.reference, reply or ""), 1.0])
    if isinstance(item, CaptionItem):
        named = concept_mentions(reply or "", item.concepts)
        present = set(item.present)
        named_present = concept_mentions(reply or "", item.present)
        share = len(named_present) / len(present) if present else 0.0
        return np.array([len(named & present), len(present), len(named), share, float(bool(present))])
    raise TypeError(type(item).__name__)


def _ratio(num: int, den: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s[..., den] > 0, s[..., num] / np.where(s[..., den] > 0, s[..., den], 1), np.nan)

    return f


def _weighted(s: np.ndarray) -> np.ndarray:
    return (_ratio(0, 1)(s) + _ratio(2, 3)(s)) / 2


def _recognition_accuracy(s: np.ndarray) -> np.ndarray:
    total = s[..., 1] + s[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (s[..., 0] + s[..., 2]) / np.where(total > 0, total, 1), np.nan)


def _caption_f1(s: np.ndarray) -> np.ndarray:
    return caption_f1(s[..., 0], s[..., 1], s[..., 2])


@dataclass(frozen=True)
class Column:
    """A reported metric: which variant's items it is computed on, and its value from summed counts."""

    key: str
    label: str
    fn: Callable[[np.ndarray], np.ndarray]
    variant: str = "original"


#: Per task, the table's metric columns in order: for multiple choice the file's option order (raw) and the
#: shuffled options (debiased) side by side; for recognition plain accuracy over all pairs (raw, dominated by
#: the negatives) and the weighted score (debiased: positives and negatives count half each).
COLUMNS: dict[str, list[Column]] = {
    "choice": [Column("accuracy", "accuracy (file order)", _ratio(0, 1)),
               Column("accuracy_shuffled", "accuracy (shuffled options)", _ratio(0, 1), "shuffled")],
    "recognition": [Column("accuracy", "accuracy (all pairs)", _recognition_accuracy),
                    Column("weighted", "weighted (pos+neg)/2", _weighted),
                    Column("positive", "positive", _ratio(0, 1)),
                    Column("negative", "negative", _ratio(2, 3))],
    "open_vqa": [Column("char_bleu", "char-BLEU", _ratio(0, 1))],
    "caption": [Column("f1", "F1 (MyVLM)", _caption_f1),
                Column("recall", "recall", _ratio(0, 1)),
                Column("precision", "precision", _ratio(0, 2)),
                Column("mc_recall", "recall per image (MC-LLaVA)", _ratio(3, 4))],
}

#: The column a breakdown (and the plot) shows, per task and breakdown dimension.
BREAKDOWN_COLUMN: dict[tuple[str, str], str] = {
    ("choice", "group"): "accuracy_shuffled",
    ("recognition", "group"): "weighted",
    ("recognition", "kind"): "accuracy",
    ("open_vqa", "group"): "char_bleu",
    ("caption", "group"): "f1",
}


def column(task: str, key: str) -> Column:
    return next(c for c in COLUMNS[task] if c.key == key)


def column_values(task: str, sums: np.ndarray) -> dict[str, float | None]:
    """Every file-order column of ``task`` on summed counts (None where undefined, e.g. no positives)."""
    out: dict[str, float | None] = {}
    for col in COLUMNS[task]:
        if col.variant == "original":
            v = float(col.fn(np.asarray(sums, dtype=np.float64)))
            out[col.key] = v if np.isfinite(v) else None
    return out


def score_items(items: Sequence[Item], replies: Sequence[str | None]) -> dict[str, float | None]:
    """The scores of ``replies`` to ``items`` (one task), exactly as the report computes them."""
    if not items:
        return {}
    sums = np.sum([item_counts(it, r) for it, r in zip(items, replies, strict=True)], axis=0)
    return column_values(items[0].task, sums)


__all__ = ["BREAKDOWN_COLUMN", "COLUMNS", "Column", "column", "column_values", "item_counts", "score_items",
           "score_reply"]
