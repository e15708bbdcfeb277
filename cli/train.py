"""`slc train ...`: train a meta-concept adapter bank, run the learning benchmark and the identity benchmark.

Heavy imports (torch, transformers, peft, sklearn) happen inside the commands so ``slc --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Meta-personalization training of the small VLM (adapter banks) and its benchmark.",
                  no_args_is_help=True)


def _embedder(spec: str, device: str):
    """The centroid embedder and the name the bank records (the runtime routes with the same one)."""
    from slc.memory.embedders import embedder_named

    return embedder_named(spec, device), spec


@app.command()
def bank(
    out: Path = typer.Option(..., "--out", "-o", help="Bank folder to write (manifest.json + adapters/ [+ base/])."),
    data: Optional[Path] = typer.Option(None, help="A CaT dataset folder (`slc data generate`); else the concept world."),
    world: int = typer.Option(1024, help="Concepts of the on-the-fly concept world (when no --data)."),
    holdout: int = typer.Option(0, min=0, help="Leave the last N world concepts out of training."),
    base_model: Optional[str] = typer.Option(None, help="Checkpoint to start from; default: a new tiny Idefics3."),
    k: int = typer.Option(4, min=1, help="Meta-concepts (K-means clusters), one LoRA adapter each."),
    meta_minutes: float = typer.Option(0.0, min=0, help="CPU-minutes of full fine-tuning before the adapters (0: none)."),
    adapter_minutes: float = typer.Option(3.0, min=0.01, help="CPU-minutes for all adapters together."),
    steps: Optional[int] = typer.Option(None, min=1, help="Cap on optimizer steps per stage (whichever ends first)."),
    lr: float = typer.Option(1e-3, help="Adapter learning rate (the meta stage uses 2x)."),
    lora_r: int = typer.Option(16, min=1),
    batch_size: int = typer.Option(32, min=1),
    embedder: str = typer.Option("object-histogram", help="Centroid embedder: object-histogram or an HF image encoder."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Resume each stage from its latest checkpoint in --out."),
    protocol: str = typer.Option("yes_no", help="Recognition protocol of the world data: yes_no | describe | likelihood "
                                 "(recorded in the bank; SmallVLM follows it). A --data folder is always yes_no."),
) -> None:
    """Train an adapter bank: (optional) full meta stage, K-means meta-concepts, one LoRA adapter per cluster."""
    from slc.agent.loading import load_vlm, resolve_device_dtype
    from slc.cat.world import make_world
    from slc.training import data as D
    from slc.training.bank import save_base, train_bank
    from slc.training.metaconcepts import cluster_concepts, concept_embeddings
    from slc.training.trainer import TrainConfig, prepare_model, train

    dev, _ = resolve_device_dtype(device)
    emb, emb_name = _embedder(embedder, str(dev))
    save_every = None if steps is None else max(1, steps // 4)
    if data is not None:
        rows = D.dataset_examples(data, "train")
        concepts = [json.loads(line) for line in (data / "concepts.jsonl").read_text().splitlines()]
        train_names = sorted({e.concept for e in rows})
        from PIL import Image

        refs = {c["name"]: [Image.open(data / r).convert("RGB") for r in c["references"]]
                for c in concepts if c["name"] in train_names}

        def make_stream(names: list[str], s: int):
            chosen = [e for e in rows if e.concept in set(names)]
            return lambda start: D.cycle_examples(chosen, s, start)
    else:
        w = make_world(world, seed=seed)
        names = [c.name for c in w]
        train_names = names[: len(names) - holdout]
        forbidden = [w.get(n).tree for n in names[len(train_names):]]
        refs = D.reference_images(w, train_names, seed=seed)
        plan = D.SamplingPlan(positives=4, easy=4, hard=8, seed=seed)

        def make_stream(names: list[str], s: int):
            return lambda start: D.stream_examples(
                w, names, plan.model_copy(update={"seed": s}), mix=D.TaskMix(recognition=0.5, describe=0.45, detection=0.05),
                seed=s, start_round=start, forbidden=forbidden, contrast=True, contrast_pool=train_names,
                protocol=protocol)  # type: ignore[arg-type]

    if base_model is None:
        from slc.training.scratch import build_scratch_vlm

        base_model = str(build_scratch_vlm("idefics3", out / "init", seed=seed, extra_words=D.WORLD_WORDS))
    if meta_minutes > 0:
        model, processor = load_vlm(base_model, device=dev)
        model.train()
        mcfg = TrainConfig(output_dir=str(out / "runs" / "meta"), mode="full", budget_cpu_s=meta_minutes * 60,
                           max_steps=steps, lr=2 * lr, batch_size=batch_size, seed=seed, save_steps=save_every)
        res = train(prepare_model(model, mcfg), processor, make_stream(train_names, seed), mcfg, resume=resume, label="meta")
        typer.echo(f"meta stage: {res.steps} steps, {res.cpu_s / 60:.2f} CPU-min, final loss {res.final_loss}")
        base_model = str(save_base(model, processor, out / "base"))
    metas = cluster_concepts(concept_embeddings(emb, refs), k, seed=seed, embedder=emb_name)
    acfg = TrainConfig(output_dir=str(out / "runs"), mode="lora", budget_cpu_s=adapter_minutes * 60, max_steps=steps,
                       lr=lr, batch_size=batch_size, seed=seed, lora_r=lora_r, lora_alpha=2 * lora_r,
                       save_steps=save_every)
    if protocol not in ("yes_no", "describe", "likelihood"):
        raise typer.BadParameter(f"--protocol must be yes_no, describe or likelihood, not {protocol!r}")
    result, trained = train_bank(base_model, out, metas, make_stream, acfg, device=dev, resume=resume,
                                 recognition=protocol if data is None else "yes_no")
    for name, r in trained.items():
        typer.echo(f"{name}: {len(metas.members()[name])} concepts, {r.steps} steps, {r.cpu_s / 60:.2f} CPU-min")
    typer.echo(f"bank written: {result.root} ({len(result)} adapters, base {result.base_model})")


@app.command()
def benchmark(
    out: Path = typer.Option(Path("runs/learning"), "--out", "-o", help="Folder for models, banks, logs and results.json."),
    meta_minutes: float = typer.Option(11.0, help="CPU-minutes of the meta (full fine-tuning) stage per variant (cap)."),
    meta_steps: Optional[int] = typer.Option(None, help="Meta-stage steps for every variant (same sample count)."),
    adapter_minutes: float = typer.Option(3.0, help="CPU-minutes of the adapter stage (shared by the K adapters)."),
    k: str = typer.Option("1,4", help="K values to compare, comma-separated."),
    variants: str = typer.Option("cat,easy", help="cat (easy+hard negatives) and/or easy (easy negatives only)."),
    holdout: int = typer.Option(64, help="Unseen concepts evaluated (never drawn or described in training)."),
    eval_every: float = typer.Option(60.0, help="Evaluate every N training CPU-seconds (the curve)."),
    width: int = typer.Option(64, help="Text and vision width of the tiny model."),
    layers: int = typer.Option(2, help="Text layers of the tiny model."),
    parallel: bool = typer.Option(True, help="Run the variants as parallel processes."),
    progress: bool = typer.Option(True, help="A labelled progress bar per training run, and per-eval lines."),
    protocol: str = typer.Option("likelihood", help="Recognition protocol: likelihood (default) | describe | yes_no."),
    aux_weight: float = typer.Option(6.0, min=0, help="Auxiliary attribute-head loss weight in the meta stage (0: off)."),
    answer_weight: float = typer.Option(1.0, help="Loss weight of Yes/No answer tokens (yes_no/describe protocols)."),
) -> None:
    """The learning benchmark (no downloads): recognition of unseen concepts after N CPU-minutes of training."""
    from slc.training.benchmark import LearningBenchmarkConfig, format_curve, format_table, run_benchmark

    model = dict(text_hidden_size=width, text_layers=layers, text_heads=4, text_kv_heads=4 if width >= 128 else 2,
                 vision_hidden_size=width, vision_layers=2, image_size=64, patch_size=8)
    cfg = LearningBenchmarkConfig(
        out_dir=str(out), base_budget_cpu_s=meta_minutes * 60, base_steps=meta_steps, adapter_budget_cpu_s=adapter_minutes * 60,
        k_values=[int(x) for x in k.split(",") if x.strip()], variants=[v.strip() for v in variants.split(",")],
        holdout=holdout, eval_every_cpu_s=eval_every, model=model, progress=progress, protocol=protocol,
        aux_attribute_weight=aux_weight, answer_weight=answer_weight,
    )  # fmt: skip
    results = run_benchmark(cfg, parallel=parallel)
    typer.echo(format_table(results))
    typer.echo("")
    typer.echo(format_curve(results))
    typer.echo(f"\nresults: {out / 'results.json'}")


@app.command()
def identity(
    out: Path = typer.Option(Path("runs/identity"), "--out", "-o", help="Folder for runs, results.json and results.md."),
    seeds: str = typer.Option("0,1,2", help="Training seeds, comma-separated (one training run per seed and variant)."),
    splits: str = typer.Option("0,1", help="Holdout splits, comma-separated (each run is evaluated on every split)."),
    minutes: float = typer.Option(10.0, min=0.1, help="Training CPU-minutes per run (rendering included)."),
    ablations: bool = typer.Option(False, help="Also train without CaT hard negatives and without diverse positives."),
    ablation_seeds: Optional[str] = typer.Option(None, help="Seeds of the ablation runs (default: --seeds)."),
    parallel: int = typer.Option(2, min=1, help="Runs at once (one process and one torch thread each)."),
    bank: Optional[Path] = typer.Option(None, help="Write the first seed's full model as a reference-recognition bank here."),
) -> None:
    """The identity benchmark: tell a concept from its look-alike twins by its reference photos (no downloads).

    Trains the small VLM (reference head + identity descriptions) on concept-world v2, calibrates every method
    on validation concepts, and reports the frozen test split per kind of photo with 95% cluster-bootstrap CIs,
    against text-only and training-free nearest-neighbour baselines on the same photos."""
    from slc.training.identity_benchmark import IdentityBenchmarkConfig, run_benchmark
    from slc.training.identity_training import IdentityTrainConfig

    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]  # noqa: E731
    variants = ["full", "no-hard-negatives", "no-diverse-positives"] if ablations else ["full"]
    cfg = IdentityBenchmarkConfig(out_dir=str(out), seeds=ints(seeds), splits=ints(splits), variants=variants,
                                  train=IdentityTrainConfig(budget_cpu_s=minutes * 60), parallel=parallel,
                                  ablation_seeds=ints(ablation_seeds) if ablation_seeds else None,
                                  bank_dir=str(bank) if bank else None)
    n = len(cfg.seeds) + (len(variants) - 1) * len(cfg.ablation_seeds or cfg.seeds)
    typer.echo(f"{n} training run(s) of {minutes:g} CPU-min, {parallel} at a time; "
               f"each run's output in {out / 'runs'}/<variant>-seed<N>.log")
    run_benchmark(cfg)
    typer.echo((out / "results.md").read_text())
    typer.echo(f"results: {out / 'results.json'}" + (f"\nbank: {bank} (SLC_SMALL__ADAPTER_BANK={bank})" if bank else ""))


@app.command("large-role")
def large_role(
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write (replaced when it exists)."),
    steps: int = typer.Option(1200, min=1, help="Training steps (the step count, not the clock, makes a run reproducible)."),
    minutes: float = typer.Option(120.0, min=0.1, help="CPU-minute cap (training stops at whichever comes first)."),
    seed: int = typer.Option(0),
    eval_every: int = typer.Option(0, min=0, help="Score 48 validation rows every N steps (0: only at the end)."),
    threads: int = typer.Option(1, min=1, help="torch threads (1 wastes least CPU on a shared machine)."),
    init: Optional[Path] = typer.Option(None, help="Continue training this large-role checkpoint (e.g. the shipped one)."),
) -> None:
    """Train the concept world's large role: a tiny VLM that verifies claims and answers in the graph's protocol.

    It learns on the identity benchmark's training concepts only; the scores printed are on validation concepts.
    Serve it with `transformers serve` or use it in-process as SLC_LARGE__MODEL=local:<out>."""
    from slc.training.large_role import LargeRoleConfig, build_large_role

    cfg = LargeRoleConfig(max_steps=steps, budget_cpu_s=minutes * 60, seed=seed, torch_threads=threads,
                          init=str(init.resolve()) if init else None)
    manifest = build_large_role(out, cfg, eval_every=eval_every, log=typer.echo)
    typer.echo(json.dumps({"run": {k: manifest["run"][k] for k in ("steps", "rows", "cpu_s", "wall_s")},
                           "validation": manifest["validation"]}, indent=1))
    typer.echo(f"large role: {out} (SLC_LARGE__MODEL=local:{out})")
