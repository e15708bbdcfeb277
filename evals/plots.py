"""Bar charts with 95% interval whiskers, drawn with Pillow (already a dependency; no plotting package added).

Why whiskers on every bar: two modes 0.02 apart on 170 items are usually not different; the chart should
show that as plainly as the table does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slc.evals.intervals import Estimate

MODE_COLOURS = [(60, 110, 200), (230, 140, 40)]  # first and second column of a mode (e.g. raw, debiased)
BASELINE_COLOUR = (170, 170, 170)


@dataclass(frozen=True)
class Bar:
    label: str
    estimate: Estimate
    baseline: bool = False
    shade: int = 0  # which of a mode's columns (colour)


def bar_chart(bars: Sequence[Bar], path: Path, title: str) -> Path:
    """Horizontal bars (0..1) with interval whiskers; baselines grey. Returns ``path``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    label_w, bar_w, row_h, top = 360, 420, 20, 40
    height = top + row_h * max(1, len(bars)) + 30
    img = Image.new("RGB", (label_w + bar_w + 150, height), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black", font=font)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + int(bar_w * frac)
        d.line([x, top - 4, x, top + row_h * len(bars)], fill=(220, 90, 90) if frac == 0.5 else (215, 215, 215))
        d.text((x - 8, top + row_h * len(bars) + 4), f"{frac:.2f}", fill="black", font=font)
    for i, bar in enumerate(bars):
        y = top + i * row_h
        d.text((10, y + 4), bar.label[:60], fill="black", font=font)
        est = bar.estimate
        if est.value is not None:
            colour = BASELINE_COLOUR if bar.baseline else MODE_COLOURS[bar.shade % len(MODE_COLOURS)]
            w = int(bar_w * max(0.0, min(1.0, est.value)))
            d.rectangle([label_w, y + 4, label_w + w, y + row_h - 4], fill=colour)
            if est.lo is not None and est.hi is not None:
                x0 = label_w + int(bar_w * max(0.0, min(1.0, est.lo)))
                x1 = label_w + int(bar_w * max(0.0, min(1.0, est.hi)))
                mid = y + row_h // 2
                d.line([x0, mid, x1, mid], fill="black", width=1)
                d.line([x0, y + 5, x0, y + row_h - 5], fill="black")
                d.line([x1, y + 5, x1, y + row_h - 5], fill="black")
        d.text((label_w + bar_w + 8, y + 4), est.text(), fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


__all__ = ["Bar", "bar_chart"]
