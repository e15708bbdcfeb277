"""Measure the similarity distributions the CaT filter's default thresholds are chosen from.

Why: the CaT paper publishes no thresholds; ours (slc.cat.filter.FilterConfig defaults) must come from a
measured distribution. For each concept of a concept world, 3 reference images are rendered; then
positives, easy and hard-k negatives are rendered and scored (max cosine to the references), plus
"planted bad positives": positives whose colour was silently changed (what a broken generator produces).

    python benchmarks/cat_filter_thresholds.py                 # ObjectHistogramEmbedder (the default)
    python benchmarks/cat_filter_thresholds.py --clip PATH     # any HF image encoder folder (e.g. tiny CLIP)
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

import numpy as np

from slc.cat.edits import SamplingPlan, sample_edits
from slc.cat.filter import FilterConfig, ObjectHistogramEmbedder, QualityFilter
from slc.cat.generators import ProceduralGenerator
from slc.cat.pipeline import reference_samples
from slc.cat.world import PALETTE, make_world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip", default=None, help="HF image-encoder folder (uses slc.memory.embedders.HFImageEmbedder)")
    args = ap.parse_args()

    if args.clip:
        from slc.memory.embedders import HFImageEmbedder

        embedder, name = HFImageEmbedder(args.clip), f"HFImageEmbedder({args.clip})"
    else:
        embedder, name = ObjectHistogramEmbedder(), "ObjectHistogramEmbedder"
    world = make_world(args.concepts, seed=args.seed)
    plan = SamplingPlan(positives=24, easy=8, hard=24, k_weights={1: 1, 2: 1, 3: 1}, diversity=0.5, seed=args.seed)
    gen = ProceduralGenerator(size=args.size)
    qf = QualityFilter(embedder, FilterConfig())
    sims: dict[str, list[float]] = defaultdict(list)
    rng = random.Random(args.seed)
    for c in world:
        refs = [gen.generate(r) for r in reference_samples(c.name, c.tree, 3, 0.3, args.seed, world.vocabulary)]
        ref_emb = qf.reference_matrix(refs)
        samples = sample_edits(c.name, c.tree, plan, world.vocabulary)
        s = qf.similarities(ref_emb, [gen.generate(x) for x in samples])
        for x, v in zip(samples, s):
            sims[x.difficulty].append(float(v))
        bad = []
        for x in samples:
            if x.is_positive:
                colour = rng.choice([p for p in PALETTE if p != x.tree.get("colour")])
                bad.append(x.model_copy(update={"tree": x.tree.with_values({"colour": colour})}))
        for v in qf.similarities(ref_emb, [gen.generate(x) for x in bad]):
            sims["planted wrong-colour positive"].append(float(v))

    print(f"embedder: {name}; {args.concepts} concepts x (24 pos, 8 easy, 24 hard k=1..3), {args.size}px, seed {args.seed}")
    print(f"{'group':32s} {'n':>5s} {'min':>6s} {'p1':>6s} {'p5':>6s} {'med':>6s} {'p95':>6s} {'max':>6s}")
    for key in ["positive", "hard-1", "hard-2", "hard-3", "easy", "planted wrong-colour positive"]:
        a = np.array(sims[key])
        q = np.percentile(a, [0, 1, 5, 50, 95, 100])
        print(f"{key:32s} {len(a):5d} " + " ".join(f"{v:6.3f}" for v in q))
    cfg = FilterConfig()
    pos, bad = np.array(sims["positive"]), np.array(sims["planted wrong-colour positive"])
    print(f"with defaults {cfg.positive_min=} {cfg.hard_min=} {cfg.hard_max=}:")
    print(f"  positives kept {np.mean(pos >= cfg.positive_min):.3f}; planted wrong-colour dropped {np.mean(bad < cfg.positive_min):.3f}")
    for key in ["hard-1", "hard-2", "hard-3"]:
        h = np.array(sims[key])
        print(f"  {key} kept {np.mean((h >= cfg.hard_min) & (h <= cfg.hard_max)):.3f}")


if __name__ == "__main__":
    main()
