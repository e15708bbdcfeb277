"""Scores per (mode, variant) from a results file, trivial baselines beside them, as markdown and a PNG.

Why baselines computed here and not only run as modes: they must be printed beside EVERY score, on exactly
the items that were scored (same limit, same missing-image skips, same shuffling), at no cost.
The plot is drawn with Pillow (already a dependency) rather than matplotlib, so the harness adds no package.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from slc.evals.datasets import Item
from slc.evals.metrics import (
    BASELINES_FOR_TASK,
    caption_scores,
    choice_accuracy,
    mc_caption_recall,
    recognition_scores,
    trivial_reply,
)
from slc.evals.runner import ResultRow, items_with_variants, score_reply

PRIMARY = {"choice": "accuracy", "recognition": "weighted", "open_vqa": "char_bleu", "caption": "f1"}


class SummaryRow(BaseModel):
    benchmark: str
    mode: str
    variant: str
    task: str
    n: int
    metrics: dict[str, float | None] = Field(default_factory=dict)
    unparsed: int = 0
    errors: int = 0
    baseline: bool = False
    calls_per_item: float = 0.0
    small_calls_per_item: float = 0.0
    tokens_per_item: float = 0.0
    cache_hits: int = 0
    wall_s_per_item: float = 0.0

    @property
    def primary(self) -> float | None:
        return self.metrics.get(PRIMARY.get(self.task, ""))


def _score(task: str, items: Sequence[Item], replies: Sequence[str | None]) -> tuple[dict[str, float | None], int]:
    if task == "choice":
        parsed = [score_reply(it, r)[0] for it, r in zip(items, replies)]
        s = choice_accuracy(parsed, [it.answer for it in items])  # type: ignore[union-attr]
        return {"accuracy": s.accuracy}, s.unparsed
    if task == "recognition":
        parsed = [score_reply(it, r)[0] for it, r in zip(items, replies)]
        s = recognition_scores(parsed, [it.expected for it in items])  # type: ignore[union-attr]
        return {"weighted": s.weighted, "positive": s.positive, "negative": s.negative, "accuracy": s.accuracy}, s.unparsed
    if task == "open_vqa":
        scores = [score_reply(it, r)[2] or 0.0 for it, r in zip(items, replies)]
        return {"char_bleu": sum(scores) / len(scores) if scores else None}, 0
    if task == "caption":
        caps = [r or "" for r in replies]
        s = caption_scores(caps, items)  # type: ignore[arg-type]
        return {"f1": s.f1, "recall": s.recall, "precision": s.precision,
                "mc_recall": mc_caption_recall(caps, items)}, 0  # type: ignore[arg-type]
    raise ValueError(task)


def summarize(benchmark: str, items: Sequence[Item], rows: Sequence[ResultRow], shuffled: bool = True,
              seed: int = 0) -> list[SummaryRow]:
    """One row per (mode, variant, task) of the results, then the trivial baselines on the same items."""
    by_id = {it.id: (v, it) for v, it in items_with_variants(items, shuffled, seed)}
    groups: dict[tuple[str, str, str], list[tuple[Item, ResultRow]]] = defaultdict(list)
    for r in rows:
        if r.item_id in by_id:
            variant, it = by_id[r.item_id]
            groups[(r.mode, variant, it.task)].append((it, r))
    out: list[SummaryRow] = []
    for (mode, variant, task), pairs in sorted(groups.items()):
        its = [it for it, _ in pairs]
        replies = [r.reply if r.error is None else None for _, r in pairs]
        metrics, unparsed = _score(task, its, replies)
        n = len(pairs)
        out.append(SummaryRow(
            benchmark=benchmark, mode=mode, variant=variant, task=task, n=n, metrics=metrics,
            unparsed=unparsed - sum(1 for _, r in pairs if r.error), errors=sum(1 for _, r in pairs if r.error),
            calls_per_item=sum(r.usage.model_calls for _, r in pairs) / n,
            small_calls_per_item=sum(r.usage.small_vlm_calls for _, r in pairs) / n,
            tokens_per_item=sum(r.usage.input_tokens + r.usage.output_tokens for _, r in pairs) / n,
            cache_hits=sum(r.usage.cache_hits for _, r in pairs),
            wall_s_per_item=sum(r.usage.wall_s for _, r in pairs) / n,
        ))
    scored = {(v, it.id): (v, it) for (_, v, _), pairs in groups.items() for it, _ in pairs}
    base_groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for (v, _), (_, it) in sorted(scored.items()):
        base_groups[(v, it.task)].append(it)
    for (variant, task), its in sorted(base_groups.items()):
        for name in BASELINES_FOR_TASK.get(task, ()):
            metrics, unparsed = _score(task, its, [trivial_reply(name, it, seed) for it in its])
            out.append(SummaryRow(benchmark=benchmark, mode=f"baseline:{name}", variant=variant, task=task,
                                  n=len(its), metrics=metrics, unparsed=unparsed, baseline=True))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """A markdown table; baseline rows are marked and listed after the modes of the same task."""
    metric_names: list[str] = []
    for r in rows:
        for k in r.metrics:
            if k not in metric_names:
                metric_names.append(k)
    head = ["mode", "variant", "n", *metric_names, "unparsed", "errors", "calls/item", "small calls/item",
            "tokens/item", "cache hits", "s/item"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.task, r.baseline, r.variant, r.mode)):
        cells = [r.mode, r.variant, str(r.n), *[_fmt(r.metrics.get(k)) for k in metric_names], str(r.unparsed),
                 str(r.errors)]
        cells += ["-"] * 5 if r.baseline else [f"{r.calls_per_item:.2f}", f"{r.small_calls_per_item:.2f}",
                                              f"{r.tokens_per_item:.1f}",
                                              str(r.cache_hits), f"{r.wall_s_per_item:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(rows: Sequence[SummaryRow], path: Path, title: str) -> Path:
    """Horizontal bars of each row's primary metric (0..1); baselines grey, modes blue. Drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    entries = [(f"{r.mode} ({r.variant}, {PRIMARY.get(r.task, '?')})", r.primary, r.baseline) for r in
               sorted(rows, key=lambda r: (r.task, r.baseline, r.variant, r.mode))]
    font = ImageFont.load_default()
    label_w, bar_w, row_h, top = 340, 420, 22, 40
    img = Image.new("RGB", (label_w + bar_w + 80, top + row_h * max(1, len(entries)) + 30), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black", font=font)
    for i, (label, value, is_base) in enumerate(entries):
        y = top + i * row_h
        d.text((10, y + 4), label[:56], fill="black", font=font)
        if value is not None:
            w = int(bar_w * max(0.0, min(1.0, value)))
            d.rectangle([label_w, y + 3, label_w + w, y + row_h - 3], fill=(170, 170, 170) if is_base else (60, 110, 200))
        d.text((label_w + bar_w + 8, y + 4), _fmt(value), fill="black", font=font)
    for frac in (0.0, 0.5, 1.0):
        x = label_w + int(bar_w * frac)
        d.line([x, top - 4, x, top + row_h * len(entries)], fill=(220, 90, 90) if frac == 0.5 else (200, 200, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def write_report(benchmark: str, items: Sequence[Item], rows: Sequence[ResultRow], out_dir: Path,
                 shuffled: bool = True, seed: int = 0, header: str = "") -> tuple[list[SummaryRow], str]:
    """summary.md, summary.json and summary.png under ``out_dir/<benchmark>/``; returns (rows, markdown)."""
    summary = summarize(benchmark, items, rows, shuffled=shuffled, seed=seed)
    table = markdown_table(summary)
    folder = Path(out_dir) / benchmark
    folder.mkdir(parents=True, exist_ok=True)
    text = f"# {benchmark}\n\n{header}\n\n{table}\n" if header else f"# {benchmark}\n\n{table}\n"
    (folder / "summary.md").write_text(text, encoding="utf-8")
    (folder / "summary.json").write_text(
        "[\n" + ",\n".join(r.model_dump_json() for r in summary) + "\n]\n", encoding="utf-8")
    bar_chart(summary, folder / "summary.png", title=f"{benchmark}: primary metric per mode")
    return summary, table

