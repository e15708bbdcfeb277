"""`slc data ...`: generate Concept-as-Tree training data from the procedural concept world, and a personalized
QA benchmark of held-out concepts in the field's formats (`slc data qa`).

Heavy imports (numpy-heavy pipeline, transformers for a CLIP embedder) happen inside the commands so
``slc --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from slc.cli.console import progress

app = typer.Typer(help="Concept-as-Tree synthetic data: controllable positives and negatives.", no_args_is_help=True)


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; files in it are overwritten)."),
    concepts: int = typer.Option(8, "--concepts", "-n", min=1, help="Concepts in the world (named <c000>...)."),
    positives: int = typer.Option(8, min=0, help="Positives per concept (identity kept, free dims varied)."),
    easy: int = typer.Option(4, min=0, help="Easy negatives per concept (other category)."),
    hard: int = typer.Option(8, min=0, help="Hard negatives per concept (k identity leaves changed)."),
    k: str = typer.Option("1:0.6,2:0.3,3:0.1", help="k of hard negatives: '1', '1,2' or weights '1:0.6,2:0.4'."),
    diversity: float = typer.Option(0.5, min=0.0, max=1.0, help="How many free dims vary, and how far."),
    seed: int = typer.Option(0, help="Seed: same seed and options give byte-identical files."),
    size: int = typer.Option(64, min=16, help="Image side in pixels."),
    references: int = typer.Option(3, min=1, help="Reference images per concept."),
    holdout: int = typer.Option(0, min=0, help="Hold the last N concepts out (written to test.jsonl)."),
    filter_: bool = typer.Option(True, "--filter/--no-filter", help="Run the quality filter."),
    clip: Optional[Path] = typer.Option(
        None, help="Filter with this HF image encoder instead of the built-in object-histogram embedder "
        "(then set the thresholds too: defaults were measured for the built-in one)."),
    positive_min: Optional[float] = typer.Option(None, help="Filter: min similarity of positives."),
    hard_min: Optional[float] = typer.Option(None, help="Filter: min similarity of hard negatives."),
    hard_max: Optional[float] = typer.Option(None, help="Filter: max similarity of hard negatives."),
) -> None:
    """Generate, filter and export a concept-world dataset (images, JSONL conversations, manifest)."""
    from pydantic import ValidationError

    from slc.cat.edits import SamplingPlan
    from slc.cat.filter import FilterConfig
    from slc.cat.pipeline import DatasetConfig, generate_dataset

    try:
        plan = SamplingPlan(positives=positives, easy=easy, hard=hard, k_weights=SamplingPlan.parse_k(k),
                            diversity=diversity, seed=seed)
        overrides = {n: v for n, v in (("positive_min", positive_min), ("hard_min", hard_min),
                                       ("hard_max", hard_max)) if v is not None}
        fcfg = FilterConfig(**overrides, **({"embedder": str(clip)} if clip else {}))
        config = DatasetConfig(n_concepts=concepts, plan=plan, size=size, references=references, holdout=holdout,
                               filter=filter_, filter_config=fcfg)
    except (ValidationError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc

    embedder = None
    if clip is not None and filter_:
        from slc.memory.embedders import HFImageEmbedder

        embedder = HFImageEmbedder(clip)

    with progress("generating samples", concepts * (positives + easy + hard)) as advance:
        try:
            result = generate_dataset(config, out, embedder=embedder, progress=advance)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    m = result.manifest
    fr = m.get("filter_report")
    typer.echo(f"wrote {out}: {m['counts']['kept']}/{m['counts']['samples']} samples kept, "
               f"{m['counts']['rows_train']} train rows, {m['counts']['rows_test']} test rows")
    if fr:
        typer.echo("filter dropped: " + (json.dumps(fr["dropped"], sort_keys=True) if fr["dropped"] else "nothing"))


@app.command()
def qa(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; a folder it wrote before is rewritten)."),
    split: str = typer.Option("test", "--split", help="test (frozen, unseen concepts), validation (for tuning) or train (training concepts, to train on)."),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed and options give byte-identical files."),
    size: int = typer.Option(64, "--size", min=32, help="Image side in pixels (64: the shipped small VLM's)."),
    concepts: Optional[int] = typer.Option(
        None, "--concepts", "-n", min=2, help="How many of the split's concepts (default 28; test has 64, "
        "validation 48)."),
) -> None:
    """Write a personalized QA benchmark of held-out concept-world concepts in the field's formats (RAP
    recognition, Yo'LLaVA visual QA, RAP text QA, MC-LLaVA two-concept choice), readable by `slc eval`."""
    import time

    from pydantic import ValidationError

    from slc.training.concept_world_qa import DEFAULT_CONCEPTS, QAConfig, generate_qa

    try:
        config = QAConfig(split=split, seed=seed, size=size,  # type: ignore[arg-type]
                          concepts=concepts or DEFAULT_CONCEPTS)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    start = time.perf_counter()
    try:
        result = generate_qa(out, config)
    except (FileExistsError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    m = result.manifest
    typer.echo(f"wrote {out} in {time.perf_counter() - start:.1f}s: {m['items_total']} items on "
               f"{len(m['concepts'])} {split} concepts (seed {seed}, {size} px)")
    for pattern, f in m["files"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in f["by_kind"].items())
        typer.echo(f"  {f['benchmark']:18s} {f['items']:4d}  {pattern}  ({kinds})")
    typer.echo(f"evaluate: slc eval <benchmark> --root {out} --mode ...   truth: {out / 'manifest.json'}, "
               f"{out / 'presence.json'}")


@app.command("show-world")
def show_world(
    concepts: int = typer.Option(8, "--concepts", "-n", min=1),
    seed: int = typer.Option(0),
) -> None:
    """Print the world's concepts: name, description and tree JSON."""
    from slc.cat.world import make_world

    for c in make_world(concepts, seed=seed):
        typer.echo(f"{c.token}\t{c.description}\t{c.tree.to_json()}")
