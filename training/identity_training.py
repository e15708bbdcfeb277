"""Meta-training of identity: one small VLM that describes concepts (language) and tells an individual from its
look-alikes by its reference photos (vision), on concept-world v2 data with CaT hard negatives and twins.

Why one run for both: the product needs both from the same small VLM (``reference`` recognition decides;
describing the reference photos at registration gives the identity text the verifier and the text-only
``likelihood`` protocol read), and the benchmark compares the two readouts of the very same model under the
very same training (:mod:`slc.training.identity_benchmark`). The steps alternate:

- reference steps (share ``1 - lm_share``): ``concepts_per_step`` training concepts, each with its three
  registration photos and ``queries_per_concept`` CaT photos from a pool rendered once per run (positives with
  free-leaf diversity, other-category / one- and multi-attribute negatives, look-alike twins). Loss: binary
  cross-entropy of the :class:`~slc.agent.reference.ReferenceHead` comparator (query vs. the mean of the
  references) plus the property head on every photo (the tree's leaves as dense targets: shape, pattern,
  accessory and its colour, the mark's side, body colour, proportions, pattern scale), which is what makes
  the vision path learn fast;
- language steps (share ``lm_share``): the likelihood recipe of the learning benchmark (describe rows and
  -log P / -log(1 - P) identity-text rows with CaT negatives, no twins: their text is the concept's own).

The clock is process CPU time, rendering the pool included; the schedule runs over the budget
(:func:`slc.training.trainer.lr_schedule`), so "N CPU-minutes" anneals completely.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slc.training.identity_data import IdentitySplit, PropertyTargets, TrainingPlan


class IdentityTrainConfig(BaseModel):
    """How one identity meta-training run goes (a small config object)."""

    model_config = ConfigDict(extra="forbid")

    budget_cpu_s: float = Field(default=600, gt=0, description="Training CPU time, pool rendering included.")
    max_steps: int | None = Field(default=None, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    warmup: float = Field(default=0.03, ge=0, lt=1)
    min_lr_ratio: float = Field(default=0.05, ge=0, le=1)
    concepts_per_step: int = Field(default=8, ge=2)
    queries_per_concept: int = Field(default=6, ge=1)
    pool_queries: int = Field(default=24_000, ge=100, description="Training photos rendered once and reused.")
    lm_share: float = Field(default=0.25, ge=0, lt=1, description="Share of steps that train the language path.")
    lm_batch: int = Field(default=32, ge=1)
    property_weight: float = Field(default=1.0, ge=0)
    colour_target: Literal["observed", "intrinsic"] = Field(default="observed", description=(
        "Body-colour target of the property head: as the photo shows it, or the instance's own (lighting undone)."))
    embed_dim: int = Field(default=128, ge=8)
    plan: TrainingPlan = Field(default_factory=TrainingPlan)
    size: int = Field(default=64, ge=32)
    seed: int = 0
    torch_threads: int | None = Field(default=1, ge=1)
    eval_every_cpu_s: float | None = Field(default=None, gt=0, description="Call ``on_eval`` this often (excluded from the clock).")


class Pool(BaseModel):
    """Rendered training photos: each concept's registration photos and CaT query photos, with their truth."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    references: list[list[Any]]
    reference_targets: list[list[PropertyTargets]]
    queries: list[Any]
    query_concept: list[int]
    query_present: list[bool]
    query_kind: list[str]
    query_targets: list[PropertyTargets]


def render_pool(split: IdentitySplit, cfg: IdentityTrainConfig) -> Pool:
    """Registration photos of every training concept and ``pool_queries`` CaT photos (deterministic)."""
    import itertools

    from slc.cat.render import render_with_info
    from slc.training.identity_data import REGISTRATION_FREE, property_targets, registration_photos, training_samples

    refs = [registration_photos(c, cfg.size, seed=i) for i, c in enumerate(split.train)]
    intrinsic = cfg.colour_target == "intrinsic"
    ref_targets = [[property_targets(c.tree, {**c.tree.free(), **f}, intrinsic_colour=intrinsic) for f in REGISTRATION_FREE]
                   for c in split.train]
    queries, concept, present, kind, targets = [], [], [], [], []
    rng = random.Random(f"pool:{cfg.seed}")
    for i, s in itertools.islice(training_samples(split, cfg.plan, cfg.seed), cfg.pool_queries):
        free = s.tree.free()
        queries.append(render_with_info(s.tree, free, size=cfg.size, seed=rng.getrandbits(31))[0])
        concept.append(i)
        present.append(s.expected_present)
        kind.append(s.difficulty)
        targets.append(property_targets(s.tree, free, intrinsic_colour=intrinsic))
    return Pool(references=refs, reference_targets=ref_targets, queries=queries, query_concept=concept,
                query_present=present, query_kind=kind, query_targets=targets)


class IdentityRun(BaseModel):
    """What a run produced (the model is trained in place)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    head: Any = Field(exclude=True, description="The trained ReferenceHead.")
    steps: int
    reference_steps: int
    language_steps: int
    cpu_s: float
    render_cpu_s: float
    wall_s: float
    curve: list[dict[str, Any]] = Field(default_factory=list)


def _language_stream(split: IdentitySplit, cfg: IdentityTrainConfig) -> Any:
    """The likelihood recipe's rows (describe + identity-text rows with CaT negatives; never a withheld pair)."""
    from slc.cat.world import ConceptWorld
    from slc.training.data import TaskMix, stream_examples

    world = ConceptWorld(seed=0, concepts=split.train)
    names = [c.name for c in split.train]
    plan = cfg.plan.sampling(cfg.seed).model_copy(update={"twins": 0})  # a twin's text IS the concept's text
    pairs = set(split.heldout_pairs)
    for e in stream_examples(world, names, plan, mix=TaskMix(recognition=0.5, describe=0.45, detection=0.05),
                             size=cfg.size, seed=cfg.seed, forbidden=split.forbidden(), contrast=True,
                             contrast_pool=names, protocol="likelihood"):
        head = e.description.split(";", 1)[0].removeprefix("an ").removeprefix("a ")
        colour = next((p.split(":", 1)[1].strip() for p in e.description.split(";") if p.strip().startswith("colour:")), None)
        if (head, colour) not in pairs:
            yield e


def train_identity(model: Any, processor: Any, split: IdentitySplit, cfg: IdentityTrainConfig, *,
                   on_eval: Callable[[Any, Any, dict[str, Any]], dict[str, Any]] | None = None,
                   log: Callable[[str], None] | None = print) -> IdentityRun:
    """Train ``model`` (every weight) and a new reference head on ``split``'s training concepts; see the module
    docstring. ``on_eval(model, head, point)`` is called every ``eval_every_cpu_s`` (its CPU time excluded)
    and returns figures added to the curve."""
    import torch
    import torch.nn.functional as F

    from slc.agent.reference import ReferenceHead, ReferenceHeadConfig, image_tokens
    from slc.training.data import encode
    from slc.training.identity_data import PROPERTY_DIM, property_loss
    from slc.training.trainer import TrainClock, TrainConfig, lr_schedule, sequence_loss

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    clock = TrainClock()
    pool = render_pool(split, cfg)
    render_cpu_s = clock.cpu_s
    feature_dim = model.config.text_config.hidden_size  # the connector projects image tokens to the LM's width
    head = ReferenceHead(ReferenceHeadConfig(feature_dim=feature_dim, embed_dim=cfg.embed_dim, property_dim=PROPERTY_DIM))
    params = [p for p in model.parameters()] + list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = lr_schedule(TrainConfig(output_dir="-", budget_cpu_s=cfg.budget_cpu_s, max_steps=cfg.max_steps,
                                      warmup=cfg.warmup, min_lr_ratio=cfg.min_lr_ratio), clock)
    by_concept: dict[int, list[int]] = {}
    for q, c in enumerate(pool.query_concept):
        by_concept.setdefault(c, []).append(q)
    concepts = sorted(by_concept)
    rng = random.Random(cfg.seed)
    language = _language_stream(split, cfg) if cfg.lm_share > 0 else None
    model.train()
    head.train()
    steps = ref_steps = lm_steps = 0
    curve: list[dict[str, Any]] = []
    next_eval = cfg.eval_every_cpu_s
    last_loss: dict[str, float] = {}
    while clock.cpu_s < cfg.budget_cpu_s and (cfg.max_steps is None or steps < cfg.max_steps):
        for g in optimizer.param_groups:
            g["lr"] = cfg.lr * schedule(steps)
        if language is not None and rng.random() < cfg.lm_share:
            rows = [next(language) for _ in range(cfg.lm_batch)]
            batch = dict(encode(processor, rows))
            labels = batch.pop("labels")
            logits = model(**batch).logits
            negative = torch.tensor([e.negative_target for e in rows])
            loss = sequence_loss(logits, labels, negative)
            last_loss["language"] = float(loss.detach())
            lm_steps += 1
        else:
            picked = rng.sample(concepts, cfg.concepts_per_step)
            q_idx = [q for c in picked for q in rng.choices(by_concept[c], k=cfg.queries_per_concept)]
            refs = [im for c in picked for im in pool.references[c]]
            tokens = image_tokens(model, processor, refs + [pool.queries[q] for q in q_idx])
            emb, props = head.describe(tokens)
            sig = head.signature(emb, props)
            n_ref = len(pool.references[picked[0]])
            ref_sig = sig[: len(refs)].view(len(picked), n_ref, -1).mean(1)
            query_sig = sig[len(refs):]
            owner = torch.arange(len(picked)).repeat_interleave(cfg.queries_per_concept)
            y = torch.tensor([float(pool.query_present[q]) for q in q_idx])
            bce = F.binary_cross_entropy_with_logits(head.score(query_sig, ref_sig[owner]), y)
            targets = [t for c in picked for t in pool.reference_targets[c]] + [pool.query_targets[q] for q in q_idx]
            prop = property_loss(props, targets) if cfg.property_weight else bce.new_zeros(())
            loss = bce + cfg.property_weight * prop
            last_loss.update(compare=float(bce.detach()), properties=float(prop.detach()))
            ref_steps += 1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        steps += 1
        if on_eval is not None and next_eval is not None and clock.cpu_s >= next_eval:
            next_eval += cfg.eval_every_cpu_s  # type: ignore[operator]
            t0 = time.process_time()
            model.eval()
            head.eval()
            point = {"step": steps, "cpu_min": round(clock.cpu_s / 60, 3), **{f"loss_{k}": round(v, 4) for k, v in last_loss.items()}}
            point.update(on_eval(model, head, point))
            model.train()
            head.train()
            clock.excluded += time.process_time() - t0
            curve.append(point)
            if log:
                log(json.dumps(point))
    model.eval()
    head.eval()
    return IdentityRun(head=head, steps=steps, reference_steps=ref_steps, language_steps=lm_steps,
                       cpu_s=round(clock.cpu_s, 2), render_cpu_s=round(render_cpu_s, 2), wall_s=round(clock.wall_s, 2),
                       curve=curve)


__all__ = ["IdentityRun", "IdentityTrainConfig", "Pool", "render_pool", "train_identity"]
