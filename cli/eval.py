"""``slc eval BENCHMARK|FILE --root DIR [--mode ...]``: run modes on a benchmark, print one table with intervals
and expected baselines, say what was reused and why the rest was redone.

Heavy imports (models, langchain-community) happen inside the command, so ``slc --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

#: Modes that read concept memory (their concepts are imported first unless --no-import-concepts).
MEMORY_MODES = ("small", "slc-noreflect", "slc", "slc-r2", "slc-paper", "large-desc", "large-refs")

app = typer.Typer(
    help="Evaluate modes on the field's benchmarks (Yo'LLaVA, RAP, MyVLM, MC-LLaVA, SLC's copies).",
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # `slc eval BENCHMARK --root DIR`: one command with options after the argument (a group would read
    # them as a sub-command name).
    context_settings={"allow_interspersed_args": True},
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.callback(invoke_without_command=True)
def eval_(
    benchmark: Optional[str] = typer.Argument(
        None, help="Benchmark name (see --list), or a published annotation file (e.g. rap/recognition_test.json)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root the item image paths are relative to."),
    annotations: Optional[Path] = typer.Option(
        None, "--annotations", help="Annotation file, or a folder holding the published files "
        "(default: --root, then settings.eval_annotations_dir)."),
    mode: Optional[list[str]] = typer.Option(
        None, "--mode", "-m",
        help="Registered mode (see --list) or module:callable; repeat for several. Without one, the table shows "
        "the trivial baselines' expected values only."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items."),
    out: Path = typer.Option(Path("eval-results"), "--out", help="Results folder (JSONL, summary.md/.json/.png)."),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Items answered at once."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Max model requests per second (API models)."),
    shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle", help="Also run choice items with options shuffled."),
    seed: int = typer.Option(0, "--seed", help="Seed of the option shuffle, the random mode and the bootstrap."),
    resamples: int = typer.Option(2000, "--resamples", min=100, help="Bootstrap resamples of the 95% intervals."),
    cache: Optional[Path] = typer.Option(
        None, "--cache", help="SQLite cache of LangChain model calls (default <out>/llm-cache.sqlite); "
        "'none' disables."),
    import_concepts: bool = typer.Option(
        True, "--import-concepts/--no-import-concepts",
        help="Before memory-using modes (small, slc*, large-desc, large-refs) run, register the benchmark's concepts "
        "from --root (train reference images + descriptions) in the eval tenant; idempotent."),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="Concept-memory tenant of the eval (default eval-<benchmark>, never your own)."),
    inject_errors: Optional[str] = typer.Option(
        None, "--inject-errors", metavar="fp=RATE,fn=RATE[,seed=N]",
        help="Controlled experiment: flip the small VLM's presence claims (absent->present with probability fp, "
        "present->absent with fn), deterministically per (image, concept, seed), in every mode that uses it "
        "(small, slc-noreflect, slc, slc-r2, slc-paper); each row's meta.injected lists its flips."),
    list_: bool = typer.Option(False, "--list", "--list-modes", help="List benchmarks and modes, then exit."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Run MODEs on BENCHMARK; results resume from <out>/<benchmark>/results.jsonl for the same configuration."""
    from slc.agent.settings import get_settings
    from slc.evals.concepts import eval_tenant, import_benchmark_concepts
    from slc.evals.datasets import BENCHMARKS, benchmark_for_file, load_benchmark
    from slc.evals.modes import MODES, ModeContext, resolve_mode
    from slc.evals.injection import ErrorInjection, inject_errors as with_errors
    from slc.evals.predictors import enable_llm_cache
    from slc.evals.presence import load_presence
    from slc.evals.report import write_report
    from slc.evals.runner import NothingToScoreError, RunConfig, run_benchmark, scorable_items
    from slc.graphs.services import ServiceFactory

    if list_ or benchmark is None:
        typer.echo("Benchmarks:")
        for name, spec in BENCHMARKS.items():
            typer.echo(f"  {name:20s} {spec.description}  [{spec.annotation or '<root> folder layout'}]")
        typer.echo("Modes:")
        for name, (_, desc) in MODES.items():
            typer.echo(f"  {name:20s} {desc}")
        typer.echo("  module:callable       your own predictor (see slc.evals.modes)")
        raise typer.Exit(0 if list_ else 2)
    settings = get_settings()
    injection = None
    if inject_errors is not None:
        try:
            injection = ErrorInjection.parse(inject_errors)
        except ValueError as exc:
            _fail(str(exc))
    search = [settings.eval_annotations_dir] if settings.eval_annotations_dir else []
    try:
        if benchmark not in BENCHMARKS and Path(benchmark).is_file():
            annotations, benchmark = Path(benchmark), benchmark_for_file(Path(benchmark))
        loaded = load_benchmark(benchmark, root=root, annotations=annotations, search=search)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    rep = loaded.report
    typer.echo(rep.summary())
    for note in rep.notes:
        typer.echo(f"note: {note}")
    config = RunConfig(out_dir=out, concurrency=concurrency, rate_per_s=rate, limit=limit, shuffled=shuffle,
                       seed=seed, progress=progress)
    try:
        items = scorable_items(loaded, config)
    except NothingToScoreError as exc:
        _fail(str(exc))
    if rep.images_missing:
        shown = ", ".join(rep.images_missing[:5])
        typer.echo(f"missing images ({len(rep.images_missing)}; {rep.items_with_missing_images} items skipped): "
                   f"{shown}{' ...' if len(rep.images_missing) > 5 else ''}")
    rows = []
    if mode:
        if cache is None or str(cache).lower() != "none":
            enable_llm_cache(cache or out / "llm-cache.sqlite")
        settings = settings.model_copy(update={"tenant": tenant or eval_tenant(benchmark)})
        services = ServiceFactory(settings)
        if injection is not None:  # every mode of the run shares this one wrapped small VLM
            services = ServiceFactory(settings, small_vlm=with_errors(services.small_vlm(), injection))
            typer.echo(f"injected small-VLM errors: absent->present {injection.fp:g}, present->absent "
                       f"{injection.fn:g}, seed {injection.seed}")
        ctx = ModeContext(root=root, seed=seed, services=services)
        if import_concepts and any(m in MEMORY_MODES for m in mode):
            # a file's folder and the folder above it (rap/x.json -> the published tree holding slc/ too)
            dirs = ([annotations] if annotations.is_dir() else [annotations.parent, annotations.parent.parent]) \
                if annotations else []
            from slc.graphs.registration import identity_reader

            # identities read off the photos by the small VLM, as a user's registration gives them
            imported = import_benchmark_concepts(ctx.services.memory(), benchmark, root, [*dirs, *search],
                                                 identify=identity_reader(ctx.services))
            typer.echo(imported.summary())
            for w in imported.warnings[:5]:
                typer.echo(f"note: {w}")
        try:
            predictors = [resolve_mode(m, ctx) for m in mode]
        except (KeyError, ImportError, AttributeError) as exc:
            _fail(str(exc))
        result = run_benchmark(loaded, predictors, config)
        typer.echo(f"\n{result.summary()}")
        rows = result.rows
    else:
        typer.echo("\nno --mode given: the table shows the trivial baselines' expected values; add --mode large, "
                   "large-desc, large-refs, small, slc-noreflect, slc, slc-r2, slc-paper (or always-A, random ... "
                   "to run a baseline as a mode)")
    header = rep.summary() + "".join(f"\n\nnote: {n}" for n in rep.notes)
    ann_dirs = ([annotations] if annotations.is_dir() else [annotations.parent]) if annotations else []
    try:
        presence, presence_file = load_presence([root, *ann_dirs])
    except ValueError as exc:
        _fail(str(exc))
    if injection is not None:
        header += (f"\n\ninjected small-VLM errors: absent->present {injection.fp:g}, present->absent "
                   f"{injection.fn:g}, seed {injection.seed}")
    if presence_file is not None:
        typer.echo(f"presence truth: {presence_file} ({len(presence)} images)")
        header += f"\n\npresence truth: {presence_file} ({len(presence)} images)"
    _, tables = write_report(benchmark, items, rows, out, shuffled=shuffle, seed=seed, header=header,
                             n_boot=resamples, presence=presence)
    typer.echo(f"\n{tables}")
    typer.echo(f"\nsummary: {out / benchmark / 'summary.md'} (+ summary.json, summary.png)"
               + (f"\nresults: {result.results_file}" if mode else ""))
