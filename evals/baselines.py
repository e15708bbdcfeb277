"""Trivial baselines: what they reply (as runnable modes) and what they score in expectation (in every table).

Why expected values: a seeded draw of "random" is one sample (0.530 on Yo'LLaVA's text QA where the
expectation is exactly 0.500), and it moves with the seed. A baseline's expected score is the mean, over
its possible replies, of the counts each reply earns (:func:`slc.evals.scoring.item_counts`), so the
baseline rows of a table are exact, on exactly the items the modes were scored on, at no cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slc.evals.items import CaptionItem, ChoiceItem, Item, RecognitionItem
from slc.evals.metrics import seeded_rng
from slc.evals.scoring import column_values, item_counts

TRIVIAL_BASELINES = ("always-A", "always-yes", "always-no", "random", "name-all")
#: The baselines that make sense per task (their expected values are printed beside every score of it).
BASELINES_FOR_TASK: dict[str, tuple[str, ...]] = {
    "choice": ("always-A", "random"),
    "recognition": ("always-yes", "always-no", "random"),
    "caption": ("name-all",),
}


def _names(item: Item) -> str:
    return ", ".join(f"<{c}>" for c in item.concepts)


def possible_replies(name: str, item: Item) -> list[str]:
    """Every reply the baseline may give to ``item``, each equally likely."""
    if name == "always-A":
        return ["A"]
    if name == "always-yes":
        return ["Yes"]
    if name == "always-no":
        return ["No"]
    if name == "name-all":
        return [_names(item)]
    if name == "random":
        if isinstance(item, ChoiceItem):
            return list(item.options)
        if isinstance(item, RecognitionItem):
            return ["Yes", "No"]
        if isinstance(item, CaptionItem):
            return ["", _names(item)]
        raise ValueError(f"no random baseline for {item.task} items")
    raise ValueError(f"unknown trivial baseline {name!r}; known: {', '.join(TRIVIAL_BASELINES)}")


def trivial_reply(name: str, item: Item, seed: int = 0) -> str:
    """What a trivial baseline replies when it runs as a mode (``random`` draws, fixed by seed and item)."""
    replies = possible_replies(name, item)
    return replies[0] if len(replies) == 1 else seeded_rng(item.id, seed + 1).choice(replies)


def expected_counts(name: str, item: Item) -> np.ndarray:
    """The baseline's expected counts on ``item``: the mean over its possible replies."""
    return np.mean([item_counts(item, r) for r in possible_replies(name, item)], axis=0)


def expected_score(name: str, items: Sequence[Item]) -> dict[str, float | None]:
    """The baseline's expected value of every file-order column of the items' task (the shuffled column is
    this on the shuffled items)."""
    if not items:
        return {}
    return column_values(items[0].task, np.sum([expected_counts(name, it) for it in items], axis=0))


__all__ = ["BASELINES_FOR_TASK", "TRIVIAL_BASELINES", "expected_counts", "expected_score", "possible_replies",
           "trivial_reply"]
