"""World -> edits -> images -> filter -> export, as one deterministic function (used by the CLI and tests).

Why one function: the learning benchmark, the demo and ``slc data generate`` must produce byte-identical
datasets from the same :class:`DatasetConfig` (no timestamps, no absolute paths, fixed iteration order),
so a training result can always be traced back to the exact data it saw.

Output folder::

    manifest.json        config, seed, counts per difficulty/task/split, filter report, prompt versions
    concepts.jsonl       name, token, description, tree, split, reference image paths
    samples.jsonl        every sample: tree, edit, difficulty, expected answer, filter decision, image, truth
    train.jsonl          conversations of kept samples of "train" concepts
    test.jsonl           conversations of held-out concepts (only when holdout > 0)
    references/<c>/ref-NN.png, images/<c>/<sample id>.png
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from slc.cat.edits import Sample, SamplingPlan, sample_edits
from slc.cat.export import PROMPT_VERSIONS, TASKS, Task, conversation_rows, write_jsonl
from slc.cat.filter import FilterConfig, FilterDecision, FilterReport, QualityFilter, merge_reports
from slc.cat.generators import ProceduralGenerator
from slc.cat.tree import ConceptTree
from slc.cat.world import ConceptWorld, describe, make_world

MANIFEST_VERSION = 1


class DatasetConfig(BaseModel):
    """Everything that determines a generated dataset."""

    n_concepts: int = Field(default=8, ge=1)
    plan: SamplingPlan = Field(default_factory=SamplingPlan)
    size: int = Field(default=64, ge=16)
    references: int = Field(default=3, ge=1, description="Reference images rendered per concept.")
    reference_diversity: float = Field(default=0.3, ge=0, le=1)
    holdout: int = Field(default=0, ge=0, description="Concepts (the last N) exported to test.jsonl only.")
    filter: bool = True
    filter_config: FilterConfig = Field(default_factory=FilterConfig)
    tasks: list[Task] = Field(default_factory=lambda: list(TASKS))


class DatasetResult(BaseModel):
    out_dir: str
    manifest: dict[str, Any]


def reference_samples(name: str, tree: ConceptTree, n: int, diversity: float, seed: int, vocab) -> list[Sample]:
    """The concept's "user photos": positives from their own seed stream (never equal to training seeds)."""
    plan = SamplingPlan(positives=n, easy=0, hard=0, diversity=diversity, seed=seed + 1_000_003)
    return [s.model_copy(update={"id": f"{name}-ref-{i:02d}", "difficulty": "reference"})
            for i, s in enumerate(sample_edits(name, tree, plan, vocab))]


def iter_rendered(world: ConceptWorld, plan: SamplingPlan, size: int = 64, names: set[str] | None = None):
    """In memory, no files: yield ``(concept, sample, image, render_info)`` for every planned sample.

    For training on the fly (the learning benchmark): same samples and pixels as :func:`generate_dataset`
    with the same plan, unfiltered (procedural samples are correct by construction).
    """
    gen = ProceduralGenerator(size=size)
    for concept in world:
        if names is not None and concept.name not in names:
            continue
        for s in sample_edits(concept.name, concept.tree, plan, world.vocabulary):
            img, info = gen.generate_with_info(s)
            yield concept, s, img, info


def generate_dataset(config: DatasetConfig, out_dir: str | Path, *, world: ConceptWorld | None = None,
                     embedder: Any = None, progress: Callable[[int], None] | None = None) -> DatasetResult:
    """Generate, filter and export a concept-world dataset into ``out_dir`` (created; files overwritten).

    ``embedder`` (ImageEmbedder protocol) defaults to ObjectHistogramEmbedder; ``progress(n)`` is called
    after each concept with the number of samples just processed.
    """
    from slc.cat.filter import ObjectHistogramEmbedder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = config.plan.seed
    world = world or make_world(config.n_concepts, seed=seed)
    if config.holdout >= len(world):
        raise ValueError(f"holdout={config.holdout} leaves no training concept out of {len(world)}")
    gen = ProceduralGenerator(size=config.size)
    qf = QualityFilter(embedder or ObjectHistogramEmbedder(), config.filter_config) if config.filter else None
    test_names = {c.name for c in world.concepts[len(world) - config.holdout:]} if config.holdout else set()
    test_trees = [c.tree for c in world.concepts if c.name in test_names]

    concept_rows, sample_rows, train_rows, test_rows = [], [], [], []
    reports: list[FilterReport] = []
    for concept in world:
        split = "test" if concept.name in test_names else "train"
        refs = reference_samples(concept.name, concept.tree, config.references, config.reference_diversity,
                                 seed, world.vocabulary)
        ref_images, ref_paths = [], []
        for r in refs:
            img = gen.generate(r)
            rel = f"references/{concept.name}/{r.id.rsplit('-', 1)[-1]}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(out / rel)
            ref_images.append(img)
            ref_paths.append(rel)
        concept_rows.append({"name": concept.name, "token": concept.token, "description": concept.description,
                             "tree": concept.tree.to_dict(), "split": split, "references": ref_paths})

        # Train negatives never take the look of a held-out concept (it must stay unseen).
        samples = sample_edits(concept.name, concept.tree, config.plan, world.vocabulary,
                               forbidden=test_trees if split == "train" else None)
        rendered = [gen.generate_with_info(s) for s in samples]
        if qf is not None:
            decisions, report = qf.filter(ref_images, samples, [im for im, _ in rendered])
            reports.append(report)
        else:
            decisions = [FilterDecision(sample_id=s.id, difficulty=s.difficulty, similarity=float("nan"), kept=True)
                         for s in samples]
        for s, (img, info), d in zip(samples, rendered, decisions):
            rel = None
            if d.kept:
                rel = f"images/{concept.name}/{s.id}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                img.save(out / rel)
                rows = conversation_rows(s, rel, describe(concept.tree), info, split, config.tasks, seed)
                (test_rows if split == "test" else train_rows).extend(rows)
            sample_rows.append({
                "id": s.id, "concept": s.concept, "split": split, "difficulty": s.difficulty,
                "expected_present": s.expected_present, "tree": s.tree.to_dict(), "edit": s.edit.model_dump(),
                "render_seed": s.render_seed, "image": rel, "kept": d.kept, "drop_reason": d.reason,
                "similarity": None if d.similarity != d.similarity else round(d.similarity, 6),
                "truth": info.model_dump(mode="json"),
            })
        if progress:
            progress(len(samples))

    write_jsonl(out / "concepts.jsonl", concept_rows)
    write_jsonl(out / "samples.jsonl", sample_rows)
    write_jsonl(out / "train.jsonl", train_rows)
    if test_names:
        write_jsonl(out / "test.jsonl", test_rows)
    elif (out / "test.jsonl").exists():
        (out / "test.jsonl").unlink()  # a stale file from an earlier run would be mistaken for this one's

    report = merge_reports(reports) if reports else None
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "seed": seed,
        "config": config.model_dump(mode="json"),
        "generator": gen.config(),
        "embedder": getattr(qf.embedder, "name", type(qf.embedder).__name__) if qf else None,
        "prompt_versions": PROMPT_VERSIONS,
        "concepts": {"total": len(world), "train": len(world) - len(test_names), "test": len(test_names)},
        "counts": {
            "samples": len(sample_rows),
            "kept": sum(r["kept"] for r in sample_rows),
            "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in sample_rows if r["kept"]).items())),
            "rows_train": len(train_rows),
            "rows_test": len(test_rows),
            "rows_by_task": dict(sorted(Counter(r["task"] for r in train_rows + test_rows).items())),
        },
        "filter_report": report.model_dump(mode="json") if report else None,
        "files": ["manifest.json", "concepts.jsonl", "samples.jsonl", "train.jsonl"] + (["test.jsonl"] if test_names else []),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return DatasetResult(out_dir=str(out), manifest=manifest)


__all__ = ["DatasetConfig", "DatasetResult", "generate_dataset", "iter_rendered", "reference_samples"]
