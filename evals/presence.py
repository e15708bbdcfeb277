"""Wrong presence claims in final answers: how often a mode ends up saying a concept is in the photo when it
is not, or not when it is.

Which claims: a graph mode's final report (``meta.final`` of :class:`~slc.evals.modes.GraphPredictor`:
``"c000=true"``, ``"c000=false?"``, ``"c000=unknown"``; what its answer relied on); a single-model mode's
Yes/No reply to a recognition item ("Yes" claims every concept of the item present, "No" claims the
concept of a one-concept item absent; unparsed: no claim).
Which truth: a recognition item's own (its ``present`` map, else its expected answer: all present for a
positive, the one concept absent for a one-concept negative), and, when the dataset has one, ``presence.json``
(image path as the annotations write it -> {concept: bool}) for any item with a photo: then every concept of
a graph mode's final report with a known truth is checked too, on every kind of item. Without the file only
recognition items count.

Per item: (wrong claims, checked pairs, pairs without a claim). The rate is wrong / checked over the same
pairs for every mode (a mode that claims nothing is never wrong, and shows up in the unclaimed count), with
a 95% bootstrap interval over the items' clusters (concepts) like every score (:mod:`slc.evals.intervals`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slc.evals.items import Item, RecognitionItem
from slc.evals.parsing import parse_yes_no

PRESENCE_FILE = "presence.json"
Presence = dict[str, dict[str, bool]]


def _norm(path: str) -> str:
    p = path.replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p


def load_presence(dirs: Iterable[Path | None]) -> tuple[Presence | None, Path | None]:
    """The first ``presence.json`` in ``dirs`` (a dataset root, an annotation folder), validated; (None, None)
    when none has one. Raises ValueError naming the file when it is not {image: {concept: bool}}."""
    for d in dirs:
        if d is None:
            continue
        path = Path(d) / PRESENCE_FILE if Path(d).is_dir() else None
        if path is None or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not readable JSON ({exc})") from exc
        if not isinstance(data, Mapping) or not all(
                isinstance(v, Mapping) and all(isinstance(b, bool) for b in v.values()) for v in data.values()):
            raise ValueError(f"{path}: expected {{image path: {{concept: true|false}}}}")
        return {_norm(str(k)): {str(c): b for c, b in v.items()} for k, v in data.items()}, path
    return None, None


def truth_of(item: Item, presence: Presence | None = None) -> dict[str, bool]:
    """What is known of which concepts are in the item's (first) photo."""
    truth: dict[str, bool] = {}
    if presence and item.images:
        truth.update(presence.get(_norm(item.images[0]), {}))
    if isinstance(item, RecognitionItem):
        if item.present:
            truth.update(item.present)
        elif item.expected:
            truth.update({c: True for c in item.concepts})
        elif len(item.concepts) == 1:
            truth[item.concepts[0]] = False
    return truth


def final_claims(final: Iterable[str]) -> dict[str, bool | None]:
    """A graph mode's ``meta.final`` as claims: ``"c=true"`` / ``"c=false?"`` / ``"c=unknown"`` -> True / False
    / None (``?``: not verified, still what the answer relied on)."""
    out: dict[str, bool | None] = {}
    for entry in final:
        concept, sep, value = str(entry).rpartition("=")
        if sep:
            out[concept] = {"true": True, "false": False}.get(value.rstrip("?"))
    return out


def claims_of(item: Item, reply: str | None, meta: Mapping[str, Any] | None) -> tuple[dict[str, bool | None], bool]:
    """(claims by concept, whether they come from a graph's final report)."""
    if meta and "final" in meta:
        return final_claims(meta["final"]), True
    if isinstance(item, RecognitionItem) and reply is not None:
        yes = parse_yes_no(reply)
        if yes:
            return {c: True for c in item.concepts}, False
        if yes is False and len(item.concepts) == 1:
            return {item.concepts[0]: False}, False
    return {}, False


def presence_counts(item: Item, reply: str | None, meta: Mapping[str, Any] | None,
                    presence: Presence | None = None) -> np.ndarray:
    """(wrong claims, checked pairs, pairs without a claim) of one answer: the item's recognition concepts,
    and for a graph mode every concept of its final report with a known truth."""
    truth = truth_of(item, presence)
    claims, from_report = claims_of(item, reply, meta)
    pairs = set(item.concepts) & set(truth) if isinstance(item, RecognitionItem) else set()
    if from_report:
        pairs |= set(claims) & set(truth)
    wrong = sum(1 for c in pairs if claims.get(c) is not None and claims[c] != truth[c])
    unclaimed = sum(1 for c in pairs if claims.get(c) is None)
    return np.array([wrong, len(pairs), unclaimed], dtype=np.float64)


def wrong_rate(s: np.ndarray) -> np.ndarray:
    """Wrong claims / checked pairs from summed counts (NaN where nothing was checked)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s[..., 1] > 0, s[..., 0] / np.where(s[..., 1] > 0, s[..., 1], 1), np.nan)


__all__ = ["PRESENCE_FILE", "Presence", "claims_of", "final_claims", "load_presence", "presence_counts",
           "truth_of", "wrong_rate"]
