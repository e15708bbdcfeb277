"""The learning benchmark: can a tiny small VLM learn, on CPU, to recognize concepts it never saw?

No downloads: the model is :func:`slc.training.scratch.build_scratch_vlm` (random init, real Idefics3
architecture, tokenizer extended with the concept world's words), the data is the CaT concept world
rendered on the fly. Held-out concepts (the last ``holdout`` of ``make_world(n_concepts)``) are never
described and never drawn in training (their looks are forbidden as negatives too); they are described to
the model by text (category, description, identity attributes: the runtime's SMALL_RECOGNIZE prompt) and
scored by the runtime's own recognition protocol (:mod:`slc.agent.recognition`), exactly as
:class:`slc.agent.small_vlm.SmallVLM` scores them.

Recipe (each choice measured, see training/LEARNING-LOG.md):

1. meta stage: full fine-tuning of every weight on dense targets, minimal-pair contrast examples,
   warmup + cosine over the CPU budget. Default protocol "likelihood": every row is "Describe the main
   object in this image." -> an identity text ("a star; colour: red; pattern: solid; accessory: none");
   positives and describe rows are trained with -log P(text), CaT negatives (the ASKED concept's text on
   an image that is not it) with -log(1 - P(text)); + 5% SLC detection-JSON rows; + a training-only
   auxiliary attribute head on the image tokens (``aux_attribute_weight``) that gets the vision tower
   going several times faster. Recognition of a concept = P(its identity text | image) above a
   threshold chosen on TRAINING concepts (never the held-out ones), stored in the bank manifest;
2. adapter stage: K LoRA adapters (language model q/k/v/o/gate/up/down), one per meta-concept (K-means
   over the concepts' reference-image embeddings, ObjectHistogramEmbedder), written as an AdapterBank
   (protocol + calibrated threshold in its manifest) and evaluated through SmallVLM with routing, for
   each K in ``k_values``.

Protocols "yes_no" (the concept question -> Yes/No logits, the old recipe) and "describe" (describe,
then the question) remain selectable; both sit on a binding plateau at these budgets (LEARNING-LOG).

Comparisons: ``variants`` "cat" (CaT plan: positives, easy and hard-k negatives) vs "easy" (the same
number of samples, negatives all easy) run the meta stage each; K=1 vs K>1 share the "cat" meta stage.
Variants run as parallel processes (one torch thread each) so their CPU clocks are independent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slc.agent.detector import RecognitionName
from slc.training.data import PromptStyles, TaskMix

Variant = Literal["cat", "easy"]


class LearningBenchmarkConfig(BaseModel):
    """Everything that determines one benchmark run."""

    model_config = ConfigDict(extra="forbid")

    out_dir: str = "runs/learning"
    family: str = "idefics3"
    model: dict[str, int] = Field(default_factory=lambda: dict(
        text_hidden_size=64, text_layers=2, text_heads=4, text_kv_heads=2, vision_hidden_size=64, vision_layers=2,
        image_size=64, patch_size=8))
    n_concepts: int = Field(default=1024, ge=16, le=1024)
    holdout: int = Field(default=64, ge=4)
    seed: int = 0
    variants: list[Variant] = Field(default_factory=lambda: ["cat", "easy"])
    base_steps: int | None = Field(default=None, ge=1, description="Meta stage steps (same for every variant).")
    base_budget_cpu_s: float = Field(default=600, gt=0, description="Meta stage CPU budget (whichever ends first).")
    adapter_budget_cpu_s: float = Field(default=180, gt=0, description="Adapter stage CPU budget, shared by the K adapters.")
    k_values: list[int] = Field(default_factory=lambda: [1, 4])
    batch_size: int = 32
    lr: float = 2e-3
    adapter_lr: float = 1e-3
    lora_r: int = 16
    mix: TaskMix = Field(default_factory=lambda: TaskMix(recognition=0.5, describe=0.45, detection=0.05))
    styles: PromptStyles = Field(default_factory=PromptStyles)
    contrast: bool = True
    protocol: RecognitionName = Field(default="likelihood", description="How recognition is asked, in training and at test.")
    aux_attribute_weight: float = Field(default=6.0, ge=0, description="Meta stage: auxiliary attribute head on the image tokens.")
    answer_weight: float = Field(default=1.0, gt=0, description="Loss weight of Yes/No answer tokens.")
    positives: int = 4
    easy: int = 4
    hard: int = 8
    eval_positives: int = 4
    eval_easy: int = 2
    eval_hard: int = 4
    eval_every_cpu_s: float = 60
    threads: int = 1
    progress: bool = False


def _plan(cfg: LearningBenchmarkConfig, variant: Variant, seed: int) -> Any:
    from slc.cat.edits import SamplingPlan

    if variant == "easy":  # same samples per concept, every negative easy
        return SamplingPlan(positives=cfg.positives, easy=cfg.easy + cfg.hard, hard=0, seed=seed)
    return SamplingPlan(positives=cfg.positives, easy=cfg.easy, hard=cfg.hard, seed=seed)


def _split(cfg: LearningBenchmarkConfig) -> tuple[Any, list[str], list[str]]:
    from slc.cat.world import make_world

    world = make_world(cfg.n_concepts, seed=cfg.seed)
    names = [c.name for c in world]
    return world, names[: -cfg.holdout], names[-cfg.holdout :]


def _stream_factory(cfg: LearningBenchmarkConfig, world: Any, names: list[str], pool: list[str], test: list[str],
                    variant: Variant, seed: int) -> Any:
    from slc.training.data import stream_examples

    forbidden = [world.get(n).tree for n in test]

    def make(start_round: int) -> Any:
        return stream_examples(world, names, _plan(cfg, variant, seed), mix=cfg.mix, styles=cfg.styles,
                               seed=seed, start_round=start_round, forbidden=forbidden, contrast=cfg.contrast,
                               contrast_pool=pool, protocol=cfg.protocol)

    return make


def _calibration_examples(cfg: LearningBenchmarkConfig, world: Any, train_names: list[str],
                          variant: Variant = "cat") -> list[Any]:
    """Likelihood protocol: examples of TRAINING concepts (fresh images, the test plan) on which the
    probability threshold is chosen; the held-out concepts never take part. Empty for other protocols.
    The easy-only variant calibrates on positives and easy negatives only: it never sees a hard negative."""
    from slc.training.data import eval_examples

    if cfg.protocol != "likelihood":
        return []
    names = train_names[-min(cfg.holdout, len(train_names)) :]
    rows = eval_examples(world, names, positives=cfg.eval_positives, easy=cfg.eval_easy, hard=cfg.eval_hard, seed=20_011)
    return [e for e in rows if variant != "easy" or not e.difficulty.startswith("hard")]


def _calibrate_bank(bank: Any, base_dir: Any, calibration: list[Any], embeddings: dict[str, Any]) -> Any:
    """Choose the bank's likelihood threshold on the calibration concepts, each under its routed adapter
    (its own model copy: loading adapters changes the model in place)."""
    from slc.agent.adapters import AdapterBank
    from slc.agent.detector import DetectorConfig
    from slc.agent.loading import load_vlm
    from slc.agent.recognition import LikelihoodRecognition
    from slc.agent.small_vlm import SmallVLM
    from slc.training.data import recognition_pairs
    from slc.training.trainer import best_threshold

    if not calibration:
        return bank
    model, processor = load_vlm(base_dir, device="cpu", dtype="float32")
    vlm = SmallVLM(model, processor, bank=bank, config=DetectorConfig(locate="never"))
    likelihood = LikelihoodRecognition()
    order: list[Any] = []
    logps: list[float] = []
    for name in dict.fromkeys(e.concept for e in calibration):
        rows = [e for e in calibration if e.concept == name]
        with vlm.using(vlm.route(embeddings[name])):
            logps += likelihood.logprobs(vlm.handle(), recognition_pairs(rows))
        order += rows
    bank.manifest.recognition_threshold = best_threshold(logps, order)
    bank.save()
    return AdapterBank.load(bank.root)


def _scores_via_runtime(model: Any, processor: Any, bank: Any, world: Any, test: list[str], examples: list[Any],
                        embeddings: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """Score the held-out set through SmallVLM with each concept routed by its reference embedding."""
    from slc.agent.detector import DetectorConfig
    from slc.agent.small_vlm import SmallVLM
    from slc.training.data import concept_query
    from slc.training.trainer import RecognitionScores

    vlm = SmallVLM(model, processor, bank=bank, config=DetectorConfig(locate="never", batch_size=64))  # protocol: the bank's
    routes = {n: vlm.route(embeddings[n]) for n in test}
    preds: list[bool] = []
    order: list[Any] = []
    for name in test:
        rows = [e for e in examples if e.concept == name]
        query = concept_query(world.get(name), "full").model_copy(update={"adapter": routes[name]})
        dets = vlm.scan([e.image for e in rows], query)
        preds += [d.status == "present" for d in dets]
        order += rows
    return RecognitionScores.from_predictions(preds, order), routes


def run_variant(cfg: LearningBenchmarkConfig, variant: Variant) -> dict[str, Any]:
    """One variant end to end (meta stage; for "cat" also the adapter stage for every K). Returns a summary."""
    import torch

    from slc.agent.loading import load_vlm
    from slc.cat.filter import ObjectHistogramEmbedder
    from slc.training.bank import save_base, train_bank
    from slc.training.data import WORLD_WORDS, eval_examples, reference_images
    from slc.training.metaconcepts import cluster_concepts, concept_embeddings
    from slc.training.scratch import build_scratch_vlm
    from slc.training.trainer import RecognitionEvaluator, TrainConfig, prepare_model, train

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir) / variant
    out.mkdir(parents=True, exist_ok=True)
    init = build_scratch_vlm(cfg.family, Path(cfg.out_dir) / "init", seed=cfg.seed, extra_words=WORLD_WORDS, **cfg.model)
    model, processor = load_vlm(init, device="cpu", dtype="float32")
    world, train_names, test = _split(cfg)
    test_examples = eval_examples(world, test, positives=cfg.eval_positives, easy=cfg.eval_easy, hard=cfg.eval_hard)
    calibration = _calibration_examples(cfg, world, train_names, variant)
    evaluator = RecognitionEvaluator(processor, test_examples, protocol=cfg.protocol, calibration=calibration)
    summary: dict[str, Any] = {"variant": variant, "protocol": cfg.protocol, "train_concepts": len(train_names), "test_concepts": len(test),
                               "test_examples": len(test_examples)}

    base_cfg = TrainConfig(
        output_dir=str(out / "meta"), mode="full", max_steps=cfg.base_steps, budget_cpu_s=cfg.base_budget_cpu_s,
        batch_size=cfg.batch_size, lr=cfg.lr, warmup=0.03, seed=cfg.seed, eval_every_cpu_s=cfg.eval_every_cpu_s,
        progress=cfg.progress, logging_steps=25, aux_attribute_weight=cfg.aux_attribute_weight,
        answer_weight=cfg.answer_weight,
    )  # fmt: skip
    model.train()
    meta = train(prepare_model(model, base_cfg), processor,
                 _stream_factory(cfg, world, train_names, train_names, test, variant, cfg.seed), base_cfg,
                 evaluator=evaluator, label=f"{variant}/meta")
    summary["meta"] = {"steps": meta.steps, "cpu_s": meta.cpu_s, "wall_s": meta.wall_s, "final_loss": meta.final_loss,
                       "samples": meta.steps * cfg.batch_size, "scores": meta.curve[-1] if meta.curve else None}
    summary["curve"] = list(meta.curve)
    base_dir = save_base(model, processor, out / "base")
    if variant != "cat":
        return summary

    embedder = ObjectHistogramEmbedder()
    refs = reference_images(world, train_names + test, n=3, seed=cfg.seed)
    embeddings = concept_embeddings(embedder, refs)
    summary["banks"] = {}
    for k in cfg.k_values:
        metas = cluster_concepts({n: embeddings[n] for n in train_names}, k, seed=cfg.seed, embedder=embedder.name)
        acfg = TrainConfig(
            output_dir=str(out / f"k{k}"), mode="lora", budget_cpu_s=cfg.adapter_budget_cpu_s,
            batch_size=cfg.batch_size, lr=cfg.adapter_lr, warmup=0.05, seed=cfg.seed + 1000 + k, lora_r=cfg.lora_r,
            lora_alpha=2 * cfg.lora_r, progress=cfg.progress, logging_steps=25, answer_weight=cfg.answer_weight,
        )  # fmt: skip

        def make_stream(concepts: list[str], seed: int) -> Any:
            return _stream_factory(cfg, world, concepts, train_names, test, "cat", seed)

        bank, trained = train_bank(base_dir, out / f"bank-k{k}", metas, make_stream, acfg, recognition=cfg.protocol)
        cpu = sum(r.cpu_s for r in trained.values())
        bank = _calibrate_bank(bank, base_dir, calibration, embeddings)
        runtime_model, runtime_proc = load_vlm(base_dir, device="cpu", dtype="float32")
        t0 = time.process_time()
        scores, routes = _scores_via_runtime(runtime_model, runtime_proc, bank, world, test, test_examples, embeddings)
        summary["banks"][str(k)] = {
            "k": metas.k, "adapter_cpu_s": round(cpu, 1), "total_cpu_s": round(meta.cpu_s + cpu, 1),
            "eval_cpu_s": round(time.process_time() - t0, 1), "bank": str(bank.root),
            "routes": {a: sum(1 for r in routes.values() if r == a) for a in metas.members()},
            "cluster_sizes": {a: len(c) for a, c in metas.members().items()}, "scores": scores.model_dump(),
            "threshold": bank.manifest.recognition_threshold if cfg.protocol == "likelihood" else None,
        }
        summary["curve"].append({"run": f"cat/k{k}", "cpu_min": round((meta.cpu_s + cpu) / 60, 3), **scores.model_dump()})
    return summary


# ----------------------------------------------------------------------------------------------------------
# Orchestration and the printed table
# ----------------------------------------------------------------------------------------------------------


def run_benchmark(cfg: LearningBenchmarkConfig, *, parallel: bool = True) -> dict[str, Any]:
    """Run every variant (parallel processes, one thread each, unless ``parallel=False``); write results.json."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from slc.training.data import WORLD_WORDS
    from slc.training.scratch import build_scratch_vlm

    build_scratch_vlm(cfg.family, out / "init", seed=cfg.seed, extra_words=WORLD_WORDS, **cfg.model)  # once, not racing
    (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    results: dict[str, Any] = {}
    if parallel and len(cfg.variants) > 1:
        procs = {}
        for v in cfg.variants:
            log = open(out / f"{v}.log", "w")
            env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads), PYTHONUNBUFFERED="1")
            procs[v] = (subprocess.Popen([sys.executable, "-m", "slc.training.benchmark", str(out / "config.json"), v],
                                         stdout=log, stderr=subprocess.STDOUT, env=env), log)
        for v, (proc, log) in procs.items():
            rc = proc.wait()
            log.close()
            if rc != 0:
                raise RuntimeError(f"benchmark variant {v!r} failed (exit {rc}); see {out / f'{v}.log'}")
            results[v] = json.loads((out / v / "summary.json").read_text())
    else:
        for v in cfg.variants:
            results[v] = run_variant(cfg, v)
            (out / v / "summary.json").write_text(json.dumps(results[v], indent=2))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _fmt(x: Any) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def format_table(results: dict[str, Any]) -> str:
    """The benchmark table: one row per trained system, accuracies on unseen concepts."""
    head = (f"{'system':<34} {'CPU-min':>7} {'samples':>8} {'pos':>6} {'neg':>6} {'easy':>6} {'hard':>6} "
            f"{'w-all':>6} {'w-easy':>6} {'w-hard':>6} {'thr':>7}")
    protocols = sorted({r.get("protocol", "yes_no") for r in results.values()})
    lines = [f"recognition protocol: {', '.join(protocols)} (thr: likelihood threshold, chosen on training concepts)",
             head, "-" * len(head)]

    def row(name: str, cpu_s: float, samples: Any, s: dict[str, Any], thr: Any) -> None:
        lines.append(f"{name:<34} {cpu_s / 60:>7.2f} {samples!s:>8} {_fmt(s['positive']):>6} {_fmt(s['negative']):>6} "
                     f"{_fmt(s['easy']):>6} {_fmt(s['hard']):>6} {_fmt(s['weighted']):>6} {_fmt(s['weighted_easy']):>6} "
                     f"{_fmt(s['weighted_hard']):>6} {'' if thr is None else f'{thr:.4f}':>7}")

    for v, r in results.items():
        label = "CaT (easy+hard negs)" if v == "cat" else "easy negatives only"
        if r["meta"]["scores"]:
            row(f"{label}, meta", r["meta"]["cpu_s"], r["meta"]["samples"], r["meta"]["scores"],
                r["meta"]["scores"].get("threshold"))
        for k, b in (r.get("banks") or {}).items():
            row(f"{label}, +K={b['k']} bank", b["total_cpu_s"], "", b["scores"], b.get("threshold"))
    return "\n".join(lines)


def format_curve(results: dict[str, Any]) -> str:
    lines = [f"{'run':<22} {'CPU-min':>7} {'step':>6} {'loss':>6} {'w-all':>6} {'w-easy':>6} {'w-hard':>6}"]
    for r in results.values():
        for p in r["curve"]:
            loss = p.get("train_loss")
            lines.append(f"{p['run']:<22} {p['cpu_min']:>7.2f} {p.get('step', ''):>6} "
                         f"{'' if loss is None else f'{loss:.3f}':>6} {_fmt(p['weighted']):>6} "
                         f"{_fmt(p['weighted_easy']):>6} {_fmt(p['weighted_hard']):>6}")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    """Subprocess entry: ``python -m slc.training.benchmark <config.json> <variant>``."""
    cfg = LearningBenchmarkConfig.model_validate_json(Path(argv[0]).read_text())
    summary = run_variant(cfg, argv[1])  # type: ignore[arg-type]
    (Path(cfg.out_dir) / argv[1] / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    _main(sys.argv[1:])


__all__ = ["LearningBenchmarkConfig", "format_curve", "format_table", "run_benchmark", "run_variant"]
