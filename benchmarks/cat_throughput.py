"""CaT throughput: procedural generation (samples/s) and quality-filter scoring (images/s).

Why: the learning benchmark generates concept-world data on the fly and filters it; this says what that
costs on CPU. Measured per repeat, reported as median and p95 over repeats:
- edits: sample_edits only (tree edits, no pixels);
- generate: sample_edits + ProceduralGenerator (render) per sample, at 64 px (and 128 px);
- pipeline: generate_dataset end to end (refs, render, filter, PNG + JSONL writing) per sample;
- filter: QualityFilter.similarities (embed + max-cosine) with ObjectHistogramEmbedder (the default) and
  with a tiny random CLIP through slc.memory.embedders.HFImageEmbedder (the baseline a real encoder
  path costs at least; its similarities are meaningless).

    python benchmarks/cat_throughput.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _stats(rates: list[float]) -> str:
    return f"median {statistics.median(rates):9.1f}/s   p95(slowest 5%) {np.percentile(rates, 5):9.1f}/s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the CLIP filter")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from slc.cat.edits import SamplingPlan, sample_edits
    from slc.cat.filter import FilterConfig, ObjectHistogramEmbedder, QualityFilter
    from slc.cat.generators import ProceduralGenerator
    from slc.cat.pipeline import DatasetConfig, generate_dataset
    from slc.cat.world import make_world

    world = make_world(16, seed=0)
    plan = SamplingPlan(positives=8, easy=4, hard=8, seed=0)
    n_samples = len(world) * (plan.positives + plan.easy + plan.hard)
    print(f"{len(world)} concepts x {plan.positives}+{plan.easy}+{plan.hard} = {n_samples} samples per repeat, "
          f"{args.repeats} repeats, torch threads {args.threads}")

    def rate(fn, n: int) -> list[float]:
        out = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            fn(r)
            out.append(n / (time.perf_counter() - t0))
        return out

    def edits(r: int) -> None:
        for c in world:
            sample_edits(c.name, c.tree, plan.model_copy(update={"seed": r}), world.vocabulary)

    print(f"edits only (samples/s)           {_stats(rate(edits, n_samples))}")
    for size in (64, 128):
        gen = ProceduralGenerator(size)

        def generate(r: int, gen=gen) -> None:
            for c in world:
                for s in sample_edits(c.name, c.tree, plan.model_copy(update={"seed": r}), world.vocabulary):
                    gen.generate(s)

        print(f"generate {size:3d}px (samples/s)       {_stats(rate(generate, n_samples))}")

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DatasetConfig(n_concepts=16, plan=plan)

        def pipeline(r: int) -> None:
            generate_dataset(cfg.model_copy(update={"plan": plan.model_copy(update={"seed": r})}), Path(tmp) / str(r))

        print(f"pipeline 64px, filter+write (samples/s) {_stats(rate(pipeline, n_samples))}")

        gen = ProceduralGenerator(64)
        c = world.concepts[0]
        images = [gen.generate(s) for s in sample_edits(c.name, c.tree, SamplingPlan(positives=128, easy=0, hard=128),
                                                         world.vocabulary)]
        refs = images[:3]
        hist = QualityFilter(ObjectHistogramEmbedder())
        print(f"filter object-histogram (images/s) {_stats(rate(lambda r: hist.similarities(refs, images), len(images)))}")

        from slc.memory.embedders import HFImageEmbedder
        from slc.testing import build_tiny_clip

        clip = HFImageEmbedder(build_tiny_clip(Path(tmp) / "clip", seed=0), batch_size=64)
        qclip = QualityFilter(clip, FilterConfig(positive_min=-1, hard_min=-1, hard_max=2))
        qclip.similarities(refs, images[:8])  # warm-up
        print(f"filter tiny CLIP 32px (images/s)   {_stats(rate(lambda r: qclip.similarities(refs, images), len(images)))}")


if __name__ == "__main__":
    main()
