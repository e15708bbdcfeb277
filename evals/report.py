"""One table per benchmark: every mode's raw and debiased scores side by side with 95% intervals, the trivial
baselines' expected values, breakdowns (single/multi image, answer kinds), a plot and a JSON copy.

Why this shape: a score is only readable beside (1) the same model on the same items with the answer prior
removed (options shuffled; positives and negatives weighted equally), (2) what a model that knows nothing
would get on exactly those items, and (3) how uncertain it is given how many concepts the items cover.
Scores are recomputed from the stored replies (never trusted from the row), so a parser fix re-scores old
runs without asking any model again. Beside the costs, each mode's rate of wrong presence claims in its final
answers (:mod:`slc.evals.presence`), where the items (or the dataset's ``presence.json``) know the truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from slc.evals.baselines import BASELINES_FOR_TASK, expected_counts
from slc.evals.intervals import DEFAULT_RESAMPLES, Estimate, bootstrap_ci
from slc.evals.items import Item
from slc.evals.parsing import parse_option_letter, parse_yes_no
from slc.evals.plots import Bar, bar_chart
from slc.evals.presence import Presence, presence_counts, wrong_rate
from slc.evals.runner import ResultRow, items_with_variants
from slc.evals.scoring import BREAKDOWN_COLUMN, COLUMNS, Column, column, item_counts

DIMENSIONS = ("group", "kind")


class Breakdown(BaseModel):
    """One subset's score: ``dimension`` (group / kind) = ``value``, on ``column``."""

    dimension: str
    value: str
    n: int
    column: str
    estimate: Estimate


class ModeScore(BaseModel):
    """One mode (or expected baseline) on one task of a benchmark."""

    benchmark: str
    task: str
    mode: str
    baseline: bool = False
    n: int = Field(description="Items scored (file-order variant).")
    columns: dict[str, Estimate] = Field(default_factory=dict)
    unparsed: int = 0
    unparsed_shuffled: int = 0
    errors: int = 0
    calls_per_item: float = 0.0
    small_calls_per_item: float = 0.0
    tokens_per_item: float = 0.0
    cache_hits: int = 0
    wall_s_per_item: float = 0.0
    wrong_presence: Estimate | None = Field(default=None, description=(
        "Wrong presence claims / (item, concept) pairs with a known truth, 95% CI over clusters (None: no pair)."))
    presence_pairs: int = Field(default=0, description="(item, concept) pairs the wrong-presence rate checked.")
    presence_unclaimed: int = Field(default=0, description="Of those, pairs the mode made no claim about.")
    fingerprints: list[str] = Field(default_factory=list)
    breakdown: list[Breakdown] = Field(default_factory=list)


Pairs = list[tuple[Item, str | None]]  # (item as asked, reply or None for an error)


def _unparsed(pairs: Pairs) -> int:
    n = 0
    for it, reply in pairs:
        if reply is None:
            continue
        if it.task == "choice" and parse_option_letter(reply, it.options) is None:  # type: ignore[attr-defined]
            n += 1
        elif it.task == "recognition" and parse_yes_no(reply) is None:
            n += 1
    return n


class _Scorer:
    """Counts and clusters of one mode's (or baseline's) answers, per variant; estimates on any subset."""

    def __init__(self, by_variant: dict[str, tuple[np.ndarray, list[Item]]], n_boot: int, seed: int,
                 sample: bool) -> None:
        self.by_variant, self.n_boot, self.seed, self.sample = by_variant, n_boot, seed, sample

    def estimate(self, col: Column, keep: tuple[str, str] | None = None) -> tuple[Estimate, int]:
        counts, items = self.by_variant.get(col.variant, (np.zeros((0, 1)), []))
        if keep is not None:
            mask = np.array([getattr(it, keep[0]) == keep[1] for it in items], dtype=bool)
            counts, items = counts[mask] if len(items) else counts, [it for it, m in zip(items, mask) if m]
        if not items:
            return Estimate(value=None), 0
        if not self.sample:  # an expectation: exact, no interval
            v = float(col.fn(counts.sum(axis=0)))
            return Estimate(value=v if np.isfinite(v) else None), len(items)
        return bootstrap_ci(counts, [it.cluster_key for it in items], col.fn, n_boot=self.n_boot,
                            seed=self.seed), len(items)

    def score(self, benchmark: str, task: str, mode: str, universe: Sequence[Item], **extra) -> ModeScore:
        s = ModeScore(benchmark=benchmark, task=task, mode=mode, n=len(self.by_variant.get("original", ([], []))[1]),
                      **extra)
        for col in COLUMNS[task]:
            s.columns[col.key] = self.estimate(col)[0]
        for dim in DIMENSIONS:
            values = sorted({getattr(it, dim) for it in universe if getattr(it, dim)})
            key = BREAKDOWN_COLUMN.get((task, dim))
            if len(values) < 2 or key is None:
                continue
            col = column(task, key)
            if col.variant not in self.by_variant:
                col = next(c for c in COLUMNS[task] if c.variant == "original")
            for value in values:
                est, n = self.estimate(col, (dim, value))
                s.breakdown.append(Breakdown(dimension=dim, value=value, n=n, column=col.key, estimate=est))
        return s


def _wrong_presence(rows: Sequence[ResultRow], by_id: dict[str, tuple[str, Item]], presence: Presence | None,
                    n_boot: int, seed: int) -> dict[str, object]:
    """The wrong-presence fields of a ModeScore from one (task, mode)'s rows (file-order items only: a
    shuffled copy asks about the same photo again)."""
    counts, clusters = [], []
    for r in rows:
        variant, it = by_id[r.item_id]
        if variant == "original":
            counts.append(presence_counts(it, r.reply if r.error is None else None, r.meta, presence))
            clusters.append(it.cluster_key)
    if not counts or not sum(c[1] for c in counts):
        return {}
    stats = np.array(counts)
    est = bootstrap_ci(stats[:, :2], clusters, wrong_rate, n_boot=n_boot, seed=seed)
    return {"wrong_presence": est, "presence_pairs": int(stats[:, 1].sum()),
            "presence_unclaimed": int(stats[:, 2].sum())}


def summarize(benchmark: str, items: Sequence[Item], rows: Sequence[ResultRow], shuffled: bool = True,
              seed: int = 0, n_boot: int = DEFAULT_RESAMPLES, presence: Presence | None = None) -> list[ModeScore]:
    """One score per (task, mode) of the rows on ``items``, then each task's expected baselines on ``items``.

    ``presence``: the dataset's presence.json (image -> {concept: bool}), for wrong presence claims beyond the
    recognition items' own truth."""
    variants = items_with_variants(items, shuffled, seed)
    by_id = {it.id: (v, it) for v, it in variants}
    grouped: dict[tuple[str, str], dict[str, Pairs]] = defaultdict(lambda: defaultdict(list))
    costs: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.item_id in by_id:
            variant, it = by_id[r.item_id]
            grouped[(it.task, r.mode)][variant].append((it, r.reply if r.error is None else None))
            costs[(it.task, r.mode)].append(r)
    out: list[ModeScore] = []
    for (task, mode), per_variant in sorted(grouped.items()):
        scorer = _Scorer({v: (np.array([item_counts(it, reply) for it, reply in pairs]), [it for it, _ in pairs])
                          for v, pairs in per_variant.items()}, n_boot, seed, sample=True)
        rs = costs[(task, mode)]
        n = len(rs)
        out.append(scorer.score(
            benchmark, task, mode, [it for it in items if it.task == task],
            unparsed=_unparsed(per_variant.get("original", [])), unparsed_shuffled=_unparsed(per_variant.get("shuffled", [])),
            errors=sum(1 for r in rs if r.error), calls_per_item=sum(r.usage.model_calls for r in rs) / n,
            small_calls_per_item=sum(r.usage.small_vlm_calls for r in rs) / n,
            tokens_per_item=sum(r.usage.input_tokens + r.usage.output_tokens for r in rs) / n,
            cache_hits=sum(r.usage.cache_hits for r in rs), wall_s_per_item=sum(r.usage.wall_s for r in rs) / n,
            fingerprints=sorted({r.fingerprint for r in rs if r.fingerprint}),
            **_wrong_presence(rs, by_id, presence, n_boot, seed)))
    for task in sorted({it.task for it in items}):
        universe = [(v, it) for v, it in variants if it.task == task]
        for name in BASELINES_FOR_TASK.get(task, ()):
            by_variant: dict[str, tuple[np.ndarray, list[Item]]] = {}
            for variant in ("original", "shuffled"):
                its = [it for v, it in universe if v == variant]
                if its:
                    by_variant[variant] = (np.array([expected_counts(name, it) for it in its]), its)
            scorer = _Scorer(by_variant, n_boot, seed, sample=False)
            out.append(scorer.score(benchmark, task, f"{name} (expected)", [it for v, it in universe
                                                                           if v == "original"], baseline=True))
    return out


# ----------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------
def _cluster_noun(items: Sequence[Item]) -> str:
    return "scenarios" if any(it.cluster for it in items) else "concepts"


def markdown_tables(scores: Sequence[ModeScore], items: Sequence[Item], n_boot: int = DEFAULT_RESAMPLES) -> str:
    """Per task: the main table (modes, then expected baselines) and one table per breakdown."""
    parts: list[str] = []
    for task in sorted({s.task for s in scores}):
        mine = sorted((s for s in scores if s.task == task), key=lambda s: (s.baseline, s.mode))
        task_items = [it for it in items if it.task == task]
        clusters = len({it.cluster_key for it in task_items})
        parts.append(f"### {task}: {len(task_items)} items; 95% CIs: bootstrap over {clusters} "
                     f"{_cluster_noun(task_items)} ({n_boot} resamples)")
        cols = COLUMNS[task]
        has_shuffled = any("accuracy_shuffled" in s.columns and s.columns["accuracy_shuffled"].value is not None
                           for s in mine)
        cols = [c for c in cols if c.variant == "original" or has_shuffled]
        presence = any(s.wrong_presence is not None for s in mine)
        head = ["mode", "n", *[c.label for c in cols], "unparsed", "errors",
                *(["wrong presence claims"] if presence else []), "calls/item", "small calls/item",
                "tokens/item", "cache hits", "s/item", "fingerprint"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in mine:
            cells = [s.mode, str(s.n), *[s.columns[c.key].text() if c.key in s.columns else "-" for c in cols]]
            if s.baseline:
                cells += ["-"] * (9 if presence else 8)
            else:
                unparsed = str(s.unparsed) + (f" / {s.unparsed_shuffled}" if has_shuffled else "")
                cells += [unparsed if task in ("choice", "recognition") else "-", str(s.errors)]
                if presence:
                    cells.append(_presence_cell(s))
                cells += [f"{s.calls_per_item:.2f}", f"{s.small_calls_per_item:.2f}", f"{s.tokens_per_item:.1f}",
                          str(s.cache_hits), f"{s.wall_s_per_item:.4f}", ", ".join(s.fingerprints) or "-"]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
        if presence:
            parts.append("wrong presence claims: claims in the final answer (a graph mode's final report, a "
                         "single model's Yes/No) that contradict the known truth, over the (item, concept) pairs "
                         "whose truth is known; (k unclaimed): pairs without a claim (unknown, not detected, "
                         "unparsed), never counted wrong. calls/item: large-VLM calls per question.")
        for dim in DIMENSIONS:
            subsets = [b for s in mine for b in s.breakdown if b.dimension == dim]
            if not subsets:
                continue
            values = list(dict.fromkeys(b.value for b in subsets))
            col = column(task, subsets[0].column)
            sizes = {b.value: b.n for b in subsets if b.n}
            head = ["mode", *[f"{v} (n={sizes.get(v, 0)})" for v in values]]
            lines = [f"#### by {dim}: {col.label}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for s in mine:
                cell = {b.value: b.estimate.text() for b in s.breakdown if b.dimension == dim}
                lines.append("| " + " | ".join([s.mode, *[cell.get(v, "-") for v in values]]) + " |")
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _presence_cell(s: ModeScore) -> str:
    if s.wrong_presence is None:
        return "-"
    unclaimed = f" ({s.presence_unclaimed} unclaimed)" if s.presence_unclaimed else ""
    return f"{s.wrong_presence.text()} n={s.presence_pairs}{unclaimed}"


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------
def _bars(scores: Sequence[ModeScore]) -> list[Bar]:
    bars = []
    for s in sorted(scores, key=lambda s: (s.task, s.baseline, s.mode)):
        for shade, col in enumerate(COLUMNS[s.task][:2]):
            est = s.columns.get(col.key)
            if est is not None and est.value is not None:
                bars.append(Bar(f"{s.mode}: {col.label}", est, s.baseline, shade))
    return bars


def _breakdown_bars(scores: Sequence[ModeScore], dim: str) -> list[Bar]:
    return [Bar(f"{s.mode}: {b.value} (n={b.n})", b.estimate, s.baseline, i % 2)
            for s in sorted(scores, key=lambda s: (s.task, s.baseline, s.mode))
            for i, b in enumerate(b for b in s.breakdown if b.dimension == dim)]


def write_report(benchmark: str, items: Sequence[Item], rows: Sequence[ResultRow], out_dir: Path,
                 shuffled: bool = True, seed: int = 0, header: str = "",
                 n_boot: int = DEFAULT_RESAMPLES, presence: Presence | None = None) -> tuple[list[ModeScore], str]:
    """summary.md, summary.json, summary.png (+ breakdown-<dim>.png) under ``out_dir/<benchmark>/``; returns
    (scores, the markdown tables). ``presence``: see :func:`summarize`."""
    scores = summarize(benchmark, items, rows, shuffled=shuffled, seed=seed, n_boot=n_boot, presence=presence)
    tables = markdown_tables(scores, items, n_boot=n_boot)
    folder = Path(out_dir) / benchmark
    folder.mkdir(parents=True, exist_ok=True)
    text = f"# {benchmark}\n\n{header}\n\n{tables}\n" if header else f"# {benchmark}\n\n{tables}\n"
    (folder / "summary.md").write_text(text, encoding="utf-8")
    (folder / "summary.json").write_text(
        "[\n" + ",\n".join(s.model_dump_json() for s in scores) + "\n]\n", encoding="utf-8")
    bar_chart(_bars(scores), folder / "summary.png", title=f"{benchmark}: scores with 95% CIs (grey: expected baselines)")
    for dim in DIMENSIONS:
        bars = _breakdown_bars(scores, dim)
        if bars:
            bar_chart(bars, folder / f"breakdown-{dim}.png", title=f"{benchmark}: by {dim}, 95% CIs")
    return scores, tables


__all__ = ["Breakdown", "ModeScore", "markdown_tables", "summarize", "write_report"]
