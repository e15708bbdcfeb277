"""The identity benchmark, in one command: can the small VLM tell a concept from its look-alikes, by its photos?

Protocol (the rules of /work/shared/design/LEARNING-PROBE.md):

- data: :mod:`slc.training.identity_data`. Splits (``splits``, default 0 and 1) hold out validation and test
  concepts, (shape, colour) pairs and test-only colours; one training run per seed (``seeds``, default 0, 1,
  2) trains on the concepts no split holds out (the union of both splits' held-out concepts, pairs and
  colours never appears in a training photo), and is evaluated on each split's frozen test;
- every choice is made on validation only: each method's decision threshold is the one with the best
  balanced accuracy (positives against all negatives) on the split's validation photos; the recipe
  (``IdentityTrainConfig`` defaults) was chosen on validation concepts of split 0;
- methods, scored on the same test photos of the same run: ``reference`` (ours: the small VLM's image
  tokens through the trained reference head, against the concept's three registration photos),
  ``likelihood`` (text only: P(identity text | photo) of the same model, the identity text derived by that
  model from the registration photos, never taken from the renderer), ``nn-histogram`` (training-free nearest
  neighbour on a hand-made object colour/pattern/silhouette histogram of the registration photos: the
  strongest training-free retrieval we have offline), ``nn-untrained`` (training-free nearest neighbour on
  the mean image tokens of the untrained small VLM: what retrieval with an untrained encoder gives, as the
  memory does offline with a random image encoder);
- reported per kind of test photo (positives; one-attribute, multi-attribute, other-category negatives;
  look-alike twins, also per instance leaf), per group (in distribution, held-out pairs, out of vocabulary,
  shifted scenes), as weighted accuracy (positive accuracy + negative accuracy) / 2 with a 95% bootstrap
  interval over (run, concept) clusters; paired differences against ours with their intervals;
- costs: steps and CPU-minutes of training (rendering included) and of evaluation.

Ablations (``--ablations``, CaT's own claim): the same runs without CaT hard negatives and twins (their
count given to other-category negatives), and without diverse positives (exact copies of the registration
view), paired with the full recipe on the same test photos; and, at test time, a per-concept threshold
calibrated on CaT negatives of that very concept rendered at registration, against the global threshold.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slc.training.identity_data import IdentitySplit, EvalItem, TrainingPlan, make_split
from slc.training.identity_training import IdentityTrainConfig

METHODS = ("reference", "likelihood", "nn-histogram", "nn-untrained")
GROUPS = ("in-distribution", "held-out-pair", "out-of-vocabulary", "shifted")
NEGATIVE_KINDS = ("one-attribute", "multi-attribute", "other-category", "twin")
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-hard-negatives": {"hard": 0, "twins": 0, "easy": 5},  # same negatives per concept, all other-category
    "no-diverse-positives": {"diversity": 0.0},
}


class IdentityBenchmarkConfig(BaseModel):
    """Everything that determines a benchmark run."""

    model_config = ConfigDict(extra="forbid")

    out_dir: str = "runs/identity"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    splits: list[int] = Field(default_factory=lambda: [0, 1])
    variants: list[str] = Field(default_factory=lambda: ["full"])
    ablation_seeds: list[int] | None = Field(default=None, description="Seeds of the variants other than full "
                                             "(default: ``seeds``); each is paired with the full run of its seed.")
    train: IdentityTrainConfig = Field(default_factory=IdentityTrainConfig)
    model: dict[str, int] = Field(default_factory=lambda: dict(
        text_hidden_size=64, text_layers=2, text_heads=4, text_kv_heads=2, vision_hidden_size=64, vision_layers=2,
        image_size=64, patch_size=8))
    parallel: int = Field(default=2, ge=1, description="Runs at once (one process each, one torch thread each).")
    bank_dir: str | None = Field(default=None, description="Write the first full run's model as an adapter bank here.")


# ------------------------------------------------------------------------------------------------------------
# Who trains on what
# ------------------------------------------------------------------------------------------------------------


def training_split(splits: Sequence[IdentitySplit]) -> IdentitySplit:
    """The concepts no split holds out, with every split's held-out concepts and pairs forbidden in training."""
    held = {c.name for s in splits for c in s.held_out()}
    pairs = sorted({p for s in splits for p in s.heldout_pairs})
    base = splits[0]
    train = [c for c in base.train if c.name not in held and (c.tree.root, c.tree.identity()["colour"]) not in set(pairs)]
    everyone = {c.name: c for s in splits for c in s.held_out()}
    return base.model_copy(update={"train": train, "heldout_pairs": pairs, "validation": list(everyone.values()),
                                   "test": [], "heldout_validation": [], "heldout_test": []})


def evaluation_sets(split: IdentitySplit, size: int) -> dict[str, list[EvalItem]]:
    """Validation and test photos of a split: every group (shifted scenes from the in-distribution concepts)."""
    from slc.training.identity_data import frozen_items

    out: dict[str, list[EvalItem]] = {}
    for part, (ind, held, oov) in {"validation": (split.validation, split.heldout_validation, split.oov_validation),
                                   "test": (split.test, split.heldout_test, split.oov_test)}.items():
        seed = 20_261_130 + (0 if part == "test" else 1) + 1000 * split.split
        out[part] = (frozen_items(ind, "in-distribution", size=size, seed=seed)
                     + frozen_items(held, "held-out-pair", size=size, seed=seed)
                     + frozen_items(oov, "out-of-vocabulary", size=size, seed=seed)
                     + frozen_items(ind, "shifted", size=size, seed=seed, shifted=True, crowd=ind))
    return out


# ------------------------------------------------------------------------------------------------------------
# Methods: one real-valued score per photo (higher = the concept is there)
# ------------------------------------------------------------------------------------------------------------


def _registrations(split: IdentitySplit, size: int) -> dict[str, list[Any]]:
    from slc.training.identity_data import registration_photos

    return {c.name: registration_photos(c, size, seed=10_000 + i) for i, c in enumerate(split.evaluated())}


def reference_scores(model: Any, processor: Any, head: Any, items: Sequence[EvalItem],
                     refs: dict[str, list[Any]]) -> list[float]:
    """Ours, through the runtime's protocol class: the head's logit of each photo against its concept's photos."""
    import torch

    from slc.agent.recognition import ModelHandle, ReferenceRecognition

    proto = ReferenceRecognition.with_head(head)
    handle = ModelHandle.of(model, processor)
    sig_refs = {}
    names = sorted({it.concept for it in items})
    for name in names:
        sig_refs[name] = proto.signatures(handle, refs[name]).mean(0)
    out: list[float] = []
    for i in range(0, len(items), 128):
        chunk = items[i:i + 128]
        q = proto.signatures(handle, [it.image for it in chunk])
        with torch.inference_mode():
            out += head.score(q, torch.stack([sig_refs[it.concept] for it in chunk])).tolist()
    return out


def derived_identities(model: Any, processor: Any, refs: dict[str, list[Any]], names: Sequence[str]) -> dict[str, Any]:
    """Each concept's identity as the model reads it off its registration photos (the runtime's own rule)."""
    from slc.agent.small_vlm import SmallVLM

    vlm = SmallVLM(model, processor)
    return {n: vlm.describe_identity(refs[n]) for n in names}


def likelihood_scores(model: Any, processor: Any, items: Sequence[EvalItem], identities: dict[str, Any]) -> list[float]:
    """Text only: log P(the derived identity text | photo); -inf where no identity could be derived."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.recognition import LikelihoodRecognition, ModelHandle, RecognitionPair

    proto, handle = LikelihoodRecognition(), ModelHandle.of(model, processor)
    scores = [-math.inf] * len(items)
    todo = [(i, it) for i, it in enumerate(items) if identities.get(it.concept) is not None]
    for k in range(0, len(todo), 64):
        chunk = todo[k:k + 64]
        pairs = [RecognitionPair(image=it.image, image_key=i, query=ConceptQuery(
            name=it.concept, category=identities[it.concept].category, attributes=identities[it.concept].attributes))
            for i, it in chunk]
        for (i, _), lp in zip(chunk, proto.logprobs(handle, pairs)):
            scores[i] = lp
    return scores


def nn_scores(embed: Any, items: Sequence[EvalItem], refs: dict[str, list[Any]]) -> list[float]:
    """Training-free retrieval: the best cosine similarity of the photo to any of the concept's photos."""
    ref_emb = {n: _unit(embed(r)) for n, r in refs.items() if any(it.concept == n for it in items)}
    q = _unit(embed([it.image for it in items]))
    return [float((ref_emb[it.concept] @ v).max()) for it, v in zip(items, q)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def token_embedder(model: Any, processor: Any) -> Any:
    """Mean image tokens of a (here: untrained) small VLM, as an embedder of photos."""
    import torch

    from slc.agent.reference import image_tokens

    def embed(images: Sequence[Any]) -> np.ndarray:
        with torch.inference_mode():
            return np.stack([t.mean(0).numpy() for i in range(0, len(images), 128)
                             for t in image_tokens(model, processor, images[i:i + 128])])

    return embed


# ------------------------------------------------------------------------------------------------------------
# Thresholds (validation) and scores (test)
# ------------------------------------------------------------------------------------------------------------


def best_threshold(scores: Sequence[float], items: Sequence[EvalItem]) -> float:
    """The threshold with the best balanced accuracy (positives vs. all negatives); ties -> the middle one."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray([it.expected_present for it in items])
    finite = np.isfinite(s)
    cands = np.unique(s[finite])
    if not len(cands):
        return 0.0
    mids = np.concatenate([[cands[0] - 1e-6], (cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-6]])
    pos, neg = s[y], s[~y]
    acc = [((pos >= t).mean() + (neg < t).mean()) / 2 for t in mids]
    best = np.flatnonzero(np.isclose(acc, max(acc)))
    return float(mids[best[len(best) // 2]])


class Row(BaseModel):
    """One scored test photo (what aggregation and bootstrap work on)."""

    run: str
    concept: str
    group: str
    kind: str
    detail: str
    present: bool
    decisions: dict[str, bool]


def score_run(items: Sequence[EvalItem], scores: dict[str, list[float]], thresholds: dict[str, float], run: str) -> list[Row]:
    return [Row(run=run, concept=it.concept, group=it.group, kind=it.kind, detail=it.detail, present=it.expected_present,
                decisions={m: bool(scores[m][i] >= thresholds[m]) for m in scores})
            for i, it in enumerate(items)]


# ------------------------------------------------------------------------------------------------------------
# One run: train one seed (one variant), evaluate every split
# ------------------------------------------------------------------------------------------------------------


def run_one(cfg: IdentityBenchmarkConfig, seed: int, variant: str) -> dict[str, Any]:
    """Train (seed, variant) and score every split's validation and test photos; returns JSON-able results."""
    import torch

    from slc.agent.loading import load_vlm
    from slc.cat.filter import ObjectHistogramEmbedder
    from slc.training.data import WORLD_WORDS
    from slc.training.identity_training import train_identity
    from slc.training.scratch import build_scratch_vlm

    out = Path(cfg.out_dir)
    tag = f"{variant}-seed{seed}"
    torch.set_num_threads(cfg.train.torch_threads or 1)
    splits = [make_split(s) for s in cfg.splits]
    plan = cfg.train.plan.model_copy(update=VARIANTS[variant])
    train_cfg = cfg.train.model_copy(update={"seed": seed, "plan": plan})
    init = build_scratch_vlm("idefics3", out / "init" / f"seed{seed}", seed=seed, extra_words=WORLD_WORDS, **cfg.model)
    model, processor = load_vlm(init, device="cpu", dtype="float32")
    untrained, _ = load_vlm(init, device="cpu", dtype="float32")
    run = train_identity(model, processor, training_split(splits), train_cfg, log=None)
    t0 = time.process_time()
    result: dict[str, Any] = {"tag": tag, "seed": seed, "variant": variant, "train": run.model_dump(), "splits": {}}
    hist = ObjectHistogramEmbedder()
    embedders = {"nn-histogram": hist.embed_images, "nn-untrained": token_embedder(untrained, processor)}
    for split in splits:
        refs = _registrations(split, train_cfg.size)
        sets = evaluation_sets(split, train_cfg.size)
        names = sorted({it.concept for part in sets.values() for it in part})
        identities = derived_identities(model, processor, refs, names)
        scored: dict[str, dict[str, list[float]]] = {}
        for part, items in sets.items():
            scored[part] = {"reference": reference_scores(model, processor, run.head, items, refs),
                            "likelihood": likelihood_scores(model, processor, items, identities),
                            **{m: nn_scores(e, items, refs) for m, e in embedders.items()}}
        thresholds = {m: best_threshold(scored["validation"][m], sets["validation"]) for m in scored["test"]}
        rows = score_run(sets["test"], scored["test"], thresholds, f"{tag}-split{split.split}")
        per_concept = per_concept_thresholds(model, processor, run.head, split, refs, thresholds["reference"],
                                             train_cfg.size) if variant == "full" else {}
        if per_concept:
            for r, s in zip(rows, scored["test"]["reference"]):
                r.decisions["reference-own-threshold"] = bool(s >= per_concept[r.concept])
        result["splits"][str(split.split)] = {
            "thresholds": thresholds, "rows": [r.model_dump() for r in rows],
            "identities_derived": sum(v is not None for v in identities.values()), "concepts": len(names),
            "identity_exact": _identity_exact(split, identities),
        }
    result["eval_cpu_s"] = round(time.process_time() - t0, 2)
    if cfg.bank_dir and variant == "full" and seed == cfg.seeds[0]:
        from slc.training.bank import write_reference_bank

        thr = result["splits"][str(cfg.splits[0])]["thresholds"]
        write_reference_bank(cfg.bank_dir, model, processor, run.head, reference_threshold=thr["reference"],
                            likelihood_threshold=math.exp(min(0.0, thr["likelihood"])) if math.isfinite(thr["likelihood"]) else 0.5)
        result["bank"] = str(cfg.bank_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / f"{tag}.json").write_text(json.dumps(result))
    return result


def _identity_exact(split: IdentitySplit, identities: dict[str, Any]) -> float:
    """Share of concepts whose derived identity equals the renderer's (the pipeline never reads the latter)."""
    truth = {c.name: c.tree for c in split.evaluated()}
    ok = [identities[n] is not None and identities[n].category == truth[n].root
          and identities[n].attributes == truth[n].identity() for n in identities]
    return round(sum(ok) / max(1, len(ok)), 4)


def per_concept_thresholds(model: Any, processor: Any, head: Any, split: IdentitySplit, refs: dict[str, list[Any]],
                           global_threshold: float, size: int) -> dict[str, float]:
    """The ablation "CaT negatives of the concept at registration": each test concept's threshold is the one that
    best separates its own registration photos (each against the other two) from CaT negatives rendered from
    its tree at registration (one-attribute edits and twins), averaged with the global threshold."""
    import torch

    from slc.agent.recognition import ModelHandle, ReferenceRecognition
    from slc.cat.world import twin_of
    from slc.cat.edits import SamplingPlan, sample_edits
    from slc.cat import world as W
    from slc.cat.render import render

    proto, handle = ReferenceRecognition.with_head(head), ModelHandle.of(model, processor)
    out = {}
    for c in (*split.test, *split.heldout_test, *split.oov_test):
        rng = random.Random(f"registration-negatives:{c.name}")
        negs = [render(s.tree, None, size=size, seed=rng.getrandbits(31)) for s in sample_edits(
            c.name, c.tree, SamplingPlan(positives=0, easy=0, hard=3, k_weights={1: 1.0}, seed=1), W.WORLD_VOCABULARY)]
        negs += [render(twin_of(c.tree, rng), None, size=size, seed=rng.getrandbits(31)) for _ in range(3)]
        sig_r = proto.signatures(handle, refs[c.name])
        sig_n = proto.signatures(handle, negs)
        with torch.inference_mode():
            pos = [float(head.score(sig_r[i:i + 1], torch.cat([sig_r[:i], sig_r[i + 1:]]).mean(0, keepdim=True)))
                   for i in range(len(sig_r))]
            neg = head.score(sig_n, sig_r.mean(0, keepdim=True).expand(len(negs), -1)).tolist()
        own = (min(pos) + max(neg)) / 2 if min(pos) > max(neg) else global_threshold
        out[c.name] = (own + global_threshold) / 2
    return out


# ------------------------------------------------------------------------------------------------------------
# Aggregation: weighted accuracy with concept-level bootstrap intervals
# ------------------------------------------------------------------------------------------------------------


def _weighted(rows: Sequence[dict[str, Any]], method: str, negatives: Sequence[dict[str, Any]]) -> float | None:
    pos = [r["decisions"][method] for r in rows if r["present"]]
    neg = [not r["decisions"][method] for r in negatives]
    if not pos or not neg:
        return None
    return (sum(pos) / len(pos) + sum(neg) / len(neg)) / 2


def cell(rows: Sequence[dict[str, Any]], method: str, *, kind: str | None, detail: str | None = None,
         n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Weighted accuracy of ``method`` on ``rows`` for one negative ``kind`` (None: all negatives), its 95% CI by
    bootstrap over (run, concept) clusters, and n."""
    def negatives(rs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rs if not r["present"] and (kind is None or r["kind"] == kind)
                and (detail is None or r["detail"].split()[0] == detail)]

    point = _weighted(rows, method, negatives(rows))
    if point is None:
        return {"value": None, "n": 0}
    clusters: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        clusters.setdefault((r["run"], r["concept"]), []).append(r)
    keys = list(clusters)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = [r for k in rng.choice(len(keys), len(keys)) for r in clusters[keys[k]]]
        v = _weighted(pick, method, negatives(pick))
        if v is not None:
            boots.append(v)
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots else (point, point))
    return {"value": round(point, 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4), "n": len(negatives(rows))}


def paired_difference(rows: Sequence[dict[str, Any]], a: str, b: str, *, kind: str | None, n_boot: int = 1000) -> dict[str, Any]:
    """Weighted accuracy of ``a`` minus ``b`` on the same photos, with a cluster-bootstrap 95% CI."""
    base = cell(rows, a, kind=kind, n_boot=0)["value"], cell(rows, b, kind=kind, n_boot=0)["value"]
    if None in base:
        return {"value": None}
    clusters: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        clusters.setdefault((r["run"], r["concept"]), []).append(r)
    keys = list(clusters)
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(n_boot):
        pick = [r for k in rng.choice(len(keys), len(keys)) for r in clusters[keys[k]]]
        neg = [r for r in pick if not r["present"] and (kind is None or r["kind"] == kind)]
        va, vb = _weighted(pick, a, neg), _weighted(pick, b, neg)
        if va is not None and vb is not None:
            diffs.append(va - vb)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"value": round(base[0] - base[1], 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def summarize(results: Sequence[dict[str, Any]], variant: str = "full", n_boot: int = 1000) -> dict[str, Any]:
    """Table cells over every run of ``variant``: method x (group, kind)."""
    rows = [r for res in results if res["variant"] == variant for s in res["splits"].values() for r in s["rows"]]
    methods = list(rows[0]["decisions"]) if rows else []
    table: dict[str, Any] = {}
    for group in GROUPS:
        g = [r for r in rows if r["group"] == group]
        if not g:
            continue
        for method in methods:
            table[f"{group}|{method}|positives"] = {
                "value": round(sum(r["decisions"][method] for r in g if r["present"]) / max(1, sum(r["present"] for r in g)), 4)}
            table[f"{group}|{method}|all"] = cell(g, method, kind=None, n_boot=n_boot)
            for kind in NEGATIVE_KINDS:
                table[f"{group}|{method}|{kind}"] = cell(g, method, kind=kind, n_boot=n_boot)
    ind = [r for r in rows if r["group"] == "in-distribution"]
    for detail in ("shade", "mark", "aspect", "pattern_scale", "accessory_colour"):
        for method in methods:
            table[f"twin-detail|{method}|{detail}"] = cell(ind, method, kind="twin", detail=detail, n_boot=n_boot)
    return {"variant": variant, "runs": sum(res["variant"] == variant for res in results), "rows": len(rows), "cells": table,
            "train_cpu_min": [round(res["train"]["cpu_s"] / 60, 2) for res in results if res["variant"] == variant],
            "train_steps": [res["train"]["steps"] for res in results if res["variant"] == variant],
            "eval_cpu_min": [round(res["eval_cpu_s"] / 60, 2) for res in results if res["variant"] == variant]}


def _fmt(c: dict[str, Any]) -> str:
    if not c or c.get("value") is None:
        return "-"
    return f"{c['value']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]" if "lo" in c else f"{c['value']:.3f}"


def format_table(summary: dict[str, Any]) -> str:
    """Markdown: one table per group, methods as rows, kinds as columns."""
    cells = summary["cells"]
    methods = sorted({k.split("|")[1] for k in cells}, key=lambda m: (m not in METHODS, METHODS.index(m) if m in METHODS else 0, m))
    lines = [f"variant {summary['variant']}: {summary['runs']} runs, {summary['rows']} scored photos; training "
             f"CPU-min per run {summary['train_cpu_min']}, steps {summary['train_steps']}; evaluation CPU-min "
             f"{summary['eval_cpu_min']}"]
    cols = ["positives", "all", *NEGATIVE_KINDS]
    for group in GROUPS:
        if f"{group}|reference|all" not in cells:
            continue
        lines += ["", f"### {group}: weighted accuracy (positives + negatives of the kind) / 2, 95% CI over (run, concept)",
                  "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_fmt(cells.get(f"{group}|{m}|{c}", {})) for c in cols) + " |")
    details = ("shade", "mark", "aspect", "pattern_scale", "accessory_colour")
    lines += ["", "### twins by the instance leaf that differs (in distribution)", "| method | " + " | ".join(details) + " |",
              "|---" * (len(details) + 1) + "|"]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(_fmt(cells.get(f"twin-detail|{m}|{d}", {})) for d in details) + " |")
    return "\n".join(lines)


def run_benchmark(cfg: IdentityBenchmarkConfig) -> dict[str, Any]:
    """Every (variant, seed) run, ``parallel`` at a time in child processes; then the summary and tables."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    jobs = [(v, s) for v in cfg.variants
            for s in (cfg.seeds if v == "full" or cfg.ablation_seeds is None else cfg.ablation_seeds)]
    t0 = time.time()
    results: list[dict[str, Any]] = []
    pending = list(jobs)
    running: list[tuple[subprocess.Popen, str, int]] = []
    while pending or running:
        while pending and len(running) < cfg.parallel:
            v, s = pending.pop(0)
            done = out / "runs" / f"{v}-seed{s}.json"
            if done.is_file():  # resume: a finished run is not repeated
                results.append(json.loads(done.read_text()))
                continue
            (out / "runs").mkdir(parents=True, exist_ok=True)
            with open(out / "runs" / f"{v}-seed{s}.log", "ab") as log:  # the child's own output (and any traceback)
                proc = subprocess.Popen([sys.executable, "-m", "slc.training.identity_benchmark", "--one",
                                         str(out / "config.json"), v, str(s)], stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, v, s))
        for proc, v, s in list(running):
            if proc.poll() is not None:
                running.remove((proc, v, s))
                if proc.returncode != 0:
                    raise RuntimeError(f"run {v} seed {s} failed with exit code {proc.returncode}; its output is in "
                                       f"{out / 'runs' / f'{v}-seed{s}.log'}")
                results.append(json.loads((out / "runs" / f"{v}-seed{s}.json").read_text()))
        time.sleep(1)
    summaries = {v: summarize(results, v) for v in cfg.variants}
    paired = {}
    if "full" in cfg.variants:
        full = [r for res in results if res["variant"] == "full" for s in res["splits"].values() for r in s["rows"]]
        for m in ("likelihood", "nn-histogram", "nn-untrained", "reference-own-threshold"):
            for kind in (None, *NEGATIVE_KINDS):
                paired[f"reference-minus-{m}|{kind or 'all'}"] = paired_difference(full, "reference", m, kind=kind)
        for v in cfg.variants:
            if v == "full":
                continue
            merged = []  # the same seeds and splits render the same test photos in the same order: pair by position
            for res in results:
                if res["variant"] != v:
                    continue
                base = next((b for b in results if b["variant"] == "full" and b["seed"] == res["seed"]), None)
                for split, part in res["splits"].items():
                    if base is None or split not in base["splits"]:
                        continue
                    for r, o in zip(base["splits"][split]["rows"], part["rows"]):
                        merged.append({**r, "decisions": {"full": r["decisions"]["reference"], v: o["decisions"]["reference"]}})
            for kind in (None, *NEGATIVE_KINDS):
                paired[f"full-minus-{v}|{kind or 'all'}"] = paired_difference(merged, "full", v, kind=kind) if merged else {}
    report = {"config": cfg.model_dump(), "wall_min": round((time.time() - t0) / 60, 2), "summaries": summaries, "paired": paired,
              "identity": {res["tag"]: {k: {"derived": s["identities_derived"], "of": s["concepts"], "exact": s["identity_exact"]}
                                        for k, s in res["splits"].items()} for res in results}}
    (out / "results.json").write_text(json.dumps(report, indent=1))
    text = "\n\n".join(format_table(s) for s in summaries.values()) + "\n\n" + format_paired(paired)
    (out / "results.md").write_text(text + "\n")
    return report


def format_paired(paired: dict[str, Any]) -> str:
    lines = ["### paired differences (weighted accuracy, same test photos, 95% cluster-bootstrap CI)", "| comparison | kind | difference |",
             "|---|---|---|"]
    for key, v in paired.items():
        comp, kind = key.split("|")
        lines.append(f"| {comp} | {kind} | {_fmt(v)} |")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        cfg = IdentityBenchmarkConfig.model_validate_json(Path(argv[1]).read_text())
        run_one(cfg, int(argv[3]), argv[2])
        return
    raise SystemExit("use `slc train identity` (this module's --one is for its child processes)")


if __name__ == "__main__":
    _main(sys.argv[1:])


__all__ = ["GROUPS", "IdentityBenchmarkConfig", "METHODS", "NEGATIVE_KINDS", "VARIANTS", "best_threshold", "cell",
           "evaluation_sets", "format_table", "paired_difference", "run_benchmark", "run_one", "summarize", "training_split"]
