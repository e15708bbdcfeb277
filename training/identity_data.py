"""The data of the identity benchmark: who is trained on, who is tested, and the frozen test photos by kind.

Why a benchmark of its own: a personalization claim is about telling *your* concept from every look-alike,
so the concepts are concept-world v2 instances (:mod:`slc.cat.world`: a shade, a mark, proportions, a
pattern scale and an accessory colour that no vocabulary word names) and the test asks what the learning
benchmark could not (/work/shared/design/LEARNING-PROBE.md): look-alike twins with the very same text,
colours no training text names, (shape, colour) pairs no training photo showed, and scenes shifted away from
training (unseen backgrounds, scales and lighting; several objects in one photo).

A split (:func:`make_split`) partitions one fixed world of the 1,024 vocabulary identities (each with random
instance leaves) into training, validation and test concepts; ``split`` picks which concepts are held out
and which (shape, colour) pairs are withheld from training altogether. Concepts of the test-only colours
(:data:`slc.cat.world.OOV_PALETTE`) are split into validation and test too. Every choice of recipe and
threshold is made on validation; test photos are rendered with a fixed seed (:func:`frozen_items`) and never
seen before the final evaluation. Training photos never show a test or validation identity, nor a withheld
pair (:meth:`IdentitySplit.forbidden`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slc.cat import world as W
from slc.cat.edits import Sample, SamplingPlan, sample_edits
from slc.cat.render import render_with_info
from slc.cat.tree import ConceptTree
from slc.cat.world import WorldConcept, make_world, twin_change

#: Kinds of test photos; each negative kind is scored against the positives of the same concepts.
Kind = Literal["positive", "one-attribute", "multi-attribute", "other-category", "twin"]
KINDS: tuple[str, ...] = ("positive", "one-attribute", "multi-attribute", "other-category", "twin")
#: Groups of test concepts / scenes reported separately.
Group = Literal["in-distribution", "held-out-pair", "out-of-vocabulary", "shifted"]

#: Free values of a concept's registration photos: like a user's (a few views, backgrounds), in distribution.
REGISTRATION_FREE: tuple[dict[str, str], ...] = (
    {"position": "center"},
    {"position": "top left", "rotation": "30", "background": "pale blue"},
    {"position": "right", "scale": "small", "background": "beige", "rotation": "60", "lighting": "bright"},
)
WORLD_SEED = 0  # one fixed world: splits differ only in who is held out
OOV_WORLD_SEED = 5


class IdentitySplit(BaseModel):
    """Which concepts train, validate and test; which (shape, colour) pairs no training photo shows."""

    model_config = ConfigDict(frozen=True)

    split: int
    train: list[WorldConcept]
    validation: list[WorldConcept]
    test: list[WorldConcept]
    heldout_pairs: list[tuple[str, str]] = Field(description="(shape, colour) never in a training photo.")
    heldout_validation: list[WorldConcept] = Field(description="Concepts of the withheld pairs, validation half.")
    heldout_test: list[WorldConcept]
    oov_validation: list[WorldConcept] = Field(description="Concepts of test-only colours, validation half.")
    oov_test: list[WorldConcept]

    def held_out(self) -> list[WorldConcept]:
        """Concepts no training photo may show (validation and test, in-vocabulary and held-out pairs)."""
        return [*self.validation, *self.test, *self.heldout_validation, *self.heldout_test]

    def evaluated(self) -> list[WorldConcept]:
        """Every concept the benchmark evaluates: the held-out ones, then the out-of-vocabulary ones."""
        return [*self.held_out(), *self.oov_validation, *self.oov_test]

    def forbidden(self) -> list[ConceptTree]:
        """Trees a training photo may never show: every held-out concept's identity."""
        return [c.tree for c in self.held_out()]

    def allowed(self) -> Callable[[ConceptTree], bool]:
        """A test for training photos: False for a tree of a withheld (shape, colour) pair or of a held-out identity."""
        pairs = set(self.heldout_pairs)
        held = {(t.root, tuple(sorted(t.identity().items()))) for t in self.forbidden()}

        def ok(tree: ConceptTree) -> bool:
            return ((tree.root, tree.identity().get("colour")) not in pairs
                    and (tree.root, tuple(sorted(tree.identity().items()))) not in held)

        return ok


def make_split(split: int = 0, *, n_validation: int = 48, n_test: int = 64, n_pairs: int = 3, n_oov: int = 64) -> IdentitySplit:
    """Split ``split`` of the fixed v2 world (see the module docstring); deterministic."""
    concepts = list(make_world(1024, seed=WORLD_SEED, instances=True))
    rng = random.Random(f"identity-split:{split}")
    pairs = rng.sample(sorted({(c.tree.root, c.tree.identity()["colour"]) for c in concepts}), n_pairs)
    withheld = [c for c in concepts if (c.tree.root, c.tree.identity()["colour"]) in set(pairs)]
    rest = [c for c in concepts if c not in withheld]
    rng.shuffle(rest)
    rng.shuffle(withheld)
    oov = list(make_world(n_oov, seed=OOV_WORLD_SEED, instances=True, colours=W.OOV_PALETTE))
    rng.shuffle(oov)
    half, ohalf = len(withheld) // 2, n_oov // 2
    return IdentitySplit(
        split=split, train=rest[n_validation + n_test:], validation=rest[:n_validation],
        test=rest[n_validation:n_validation + n_test], heldout_pairs=pairs, heldout_validation=withheld[:half],
        heldout_test=withheld[half:], oov_validation=oov[:ohalf], oov_test=oov[ohalf:],
    )


def registration_photos(concept: WorldConcept, size: int = 64, seed: int = 0) -> list[Any]:
    """The concept's reference photos (:data:`REGISTRATION_FREE`), as a user would register them."""
    return [render_with_info(concept.tree, f, size=size, seed=seed * 7919 + k)[0] for k, f in enumerate(REGISTRATION_FREE)]


# ------------------------------------------------------------------------------------------------------------
# Training photos
# ------------------------------------------------------------------------------------------------------------


class TrainingPlan(BaseModel):
    """What a training photo may be (a small config, as CaT's SamplingPlan): the CaT sampling of each concept,
    and whether positives vary their free leaves (diverse positives) or stay close to the references."""

    model_config = ConfigDict(extra="forbid")

    positives: int = Field(default=2, ge=0)
    easy: int = Field(default=1, ge=0)
    hard: int = Field(default=2, ge=0, description="Hard negatives: identity leaves changed (k from k_weights).")
    twins: int = Field(default=2, ge=0, description="Look-alike twins (0 = no twin negatives).")
    k_weights: dict[int, float] = Field(default_factory=lambda: {1: 0.7, 2: 0.3})
    diversity: float = Field(default=0.5, ge=0, le=1, description="How far positives' free leaves move (0 = exact copies).")

    def sampling(self, seed: int) -> SamplingPlan:
        return SamplingPlan(positives=self.positives, easy=self.easy, hard=self.hard, twins=self.twins,
                            k_weights=self.k_weights, diversity=self.diversity, seed=seed)


def training_samples(split: IdentitySplit, plan: TrainingPlan, seed: int) -> Iterator[tuple[int, Sample]]:
    """(training concept index, CaT sample) in rounds (round r samples every concept with seed (seed, r)),
    skipping samples that would show a held-out identity or a withheld pair."""
    forbidden, allowed = split.forbidden(), split.allowed()
    r = 0
    while True:
        order = list(range(len(split.train)))
        random.Random(f"{seed}:order:{r}").shuffle(order)
        for i in order:
            c = split.train[i]
            for s in sample_edits(c.name, c.tree, plan.sampling(seed * 100_003 + r), W.WORLD_VOCABULARY, forbidden,
                                  twin=twin_change if plan.twins else None):
                if allowed(s.tree):
                    yield i, s
        r += 1


# ------------------------------------------------------------------------------------------------------------
# What the vision path is also taught to see (the tree's leaves as dense targets, training only)
# ------------------------------------------------------------------------------------------------------------

_CLASSES: dict[str, tuple[str, ...]] = {"shape": W.SHAPES, "pattern": W.PATTERNS, "accessory": W.ACCESSORIES,
                                        "mark": W.MARKS, "accessory_colour": tuple(W.ACCESSORY_COLOURS)}
PROPERTY_DIM = sum(len(v) for v in _CLASSES.values()) + 3 + 1 + 1  # + body RGB, aspect, pattern scale
_LIGHT = {**W.LIGHTING, **W.SHIFTED_LIGHTING}


class PropertyTargets(BaseModel):
    """The renderer's truth for one photo's main object (what a property head learns to read)."""

    classes: dict[str, int]
    rgb: tuple[float, float, float]
    aspect: float
    pattern_scale: float | None


def property_targets(tree: ConceptTree, free: dict[str, str], *, intrinsic_colour: bool = False) -> PropertyTargets:
    """The photo's dense targets. ``intrinsic_colour``: the body colour as the instance is (lighting undone, as
    colour constancy would see it) instead of as the photo shows it."""
    ident, inst = tree.identity(), {**W.INSTANCE_REFERENCE, **tree.instance()}
    classes = {"shape": W.SHAPES.index(tree.root), "pattern": W.PATTERNS.index(ident["pattern"]),
               "accessory": W.ACCESSORIES.index(ident["accessory"]), "mark": W.MARKS.index(inst["mark"]),
               "accessory_colour": (list(W.ACCESSORY_COLOURS).index(inst["accessory_colour"])
                                    if ident["accessory"] != "none" else -100)}
    gain = 1.0 if intrinsic_colour else _LIGHT[free.get("lighting", "normal")]
    rgb = tuple(min(255.0, c * gain) / 255.0 for c in W.shade_rgb(ident["colour"], inst["shade"]))
    return PropertyTargets(classes=classes, rgb=rgb, aspect=float(inst["aspect"]),  # type: ignore[arg-type]
                           pattern_scale=float(inst["pattern_scale"]) if ident["pattern"] != "solid" else None)


def property_loss(outputs: Any, targets: Sequence[PropertyTargets]) -> Any:
    """Cross-entropy per class slot + squared error of colour, proportions and pattern scale (the property
    head's raw outputs, in the order of :data:`PROPERTY_DIM`)."""
    import torch
    import torch.nn.functional as F

    loss, start = outputs.new_zeros(()), 0
    for name, values in _CLASSES.items():
        y = torch.tensor([t.classes[name] for t in targets], device=outputs.device)
        if (y >= 0).any():
            loss = loss + F.cross_entropy(outputs[:, start:start + len(values)], y, ignore_index=-100)
        start += len(values)
    rgb = torch.tensor([t.rgb for t in targets], device=outputs.device)
    loss = loss + 20 * F.mse_loss(torch.sigmoid(outputs[:, start:start + 3]), rgb)
    loss = loss + 10 * F.mse_loss(outputs[:, start + 3], torch.tensor([t.aspect - 1 for t in targets], device=outputs.device))
    scale = [(i, t.pattern_scale - 1) for i, t in enumerate(targets) if t.pattern_scale is not None]
    if scale:
        idx = torch.tensor([i for i, _ in scale], device=outputs.device)
        loss = loss + 10 * F.mse_loss(outputs[idx, start + 4], torch.tensor([v for _, v in scale], device=outputs.device))
    return loss


# ------------------------------------------------------------------------------------------------------------
# The frozen test photos
# ------------------------------------------------------------------------------------------------------------


class EvalItem(BaseModel):
    """One test photo: which concept is asked, what kind of photo it is, and the right answer."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    concept: str
    group: str = Field(description="in-distribution | held-out-pair | out-of-vocabulary | shifted")
    kind: str = Field(description="positive | one-attribute | multi-attribute | other-category | twin")
    detail: str = Field(default="", description="For a twin: which instance leaf differs; for a shift: what moved.")
    expected_present: bool
    image: Any
    tree: ConceptTree | None = Field(default=None, description="What the photo's main object is (renderer truth).")
    info: Any = Field(default=None, description="The renderer's RenderInfo: where the object (and others) are.")


def concept_items(concept: WorldConcept, group: str, rng: random.Random, *, size: int, positives: int = 4,
                  per_negative_kind: int = 2, twins: int = 3, shifted: bool = False,
                  crowd: Sequence[ConceptTree] = ()) -> list[EvalItem]:
    """Test photos of one concept: positives and every negative kind (twins one per visible instance leaf,
    drawn without repeats), in the training free-value distribution; with ``shifted`` the free values come
    from :data:`slc.cat.world.SHIFTED_FREE` and some photos hold other objects too (``crowd``)."""
    plan = SamplingPlan(positives=positives, easy=per_negative_kind, hard=4 * per_negative_kind, twins=0,
                        k_weights={1: 0.5, 2: 0.3, 3: 0.2}, diversity=0.5, seed=rng.getrandbits(31))
    samples = sample_edits(concept.name, concept.tree, plan, W.WORLD_VOCABULARY)
    hard1 = [s for s in samples if s.difficulty == "hard-1"][:per_negative_kind]
    multi = [s for s in samples if s.difficulty in ("hard-2", "hard-3")][:per_negative_kind]
    chosen: list[tuple[str, str, ConceptTree, dict[str, str], bool]] = []
    for s in samples:
        if s.is_positive:
            chosen.append(("positive", "", s.tree, s.tree.free(), True))
    chosen += [("one-attribute", s.edit.changed("identity")[0], s.tree, s.tree.free(), False) for s in hard1]
    chosen += [("multi-attribute", "+".join(s.edit.changed("identity")), s.tree, s.tree.free(), False) for s in multi]
    chosen += [("other-category", s.tree.root, s.tree, s.tree.free(), False)
               for s in samples if s.difficulty == "easy"][:per_negative_kind]
    dims = W.visible_instance_dims(concept.tree)
    rng.shuffle(dims)
    pos_free = [f for k, _, _, f, _ in chosen if k == "positive"] or [concept.tree.free()]
    for dim in dims[:twins]:
        d, new = twin_change(concept.tree, rng, dim)
        chosen.append(("twin", d, concept.tree.with_values({d: new}), rng.choice(pos_free), False))
    items = []
    for kind, detail, tree, free, present in chosen:
        companions: list[ConceptTree] = []
        if shifted:
            dim = rng.choice(sorted(W.SHIFTED_FREE))
            free = {**free, dim: rng.choice(W.SHIFTED_FREE[dim])}
            detail = f"{detail} {dim}={free[dim]}".strip()
            if crowd and rng.random() < 0.5:  # several objects: the asked one (or its look-alike) among others
                companions = rng.sample(list(crowd), 2)
                free = {**free, "position": rng.choice(["top left", "top right", "bottom left", "bottom right"]),
                        "scale": "small"}
                detail += " +2 objects"
        image, info = render_with_info(tree, free, size=size, seed=rng.getrandbits(31), companions=companions)
        items.append(EvalItem(concept=concept.name, group=group, kind=kind, detail=detail, expected_present=present,
                              image=image, tree=tree, info=info))
    return items


def frozen_items(concepts: Sequence[WorldConcept], group: str, *, size: int = 64, seed: int = 20_261_130,
               shifted: bool = False, crowd: Sequence[WorldConcept] = ()) -> list[EvalItem]:
    """The frozen photos of a group (same seed -> the same photos, whoever renders them)."""
    out = []
    for c in concepts:
        rng = random.Random(f"{seed}:{group}:{c.name}")
        others = [o.tree for o in crowd if o.name != c.name]
        out += concept_items(c, group, rng, size=size, shifted=shifted, crowd=others)
    return out


def as_array(images: Sequence[Any]) -> np.ndarray:
    """(n, h, w, 3) uint8: a compact pool of rendered photos."""
    return np.stack([np.asarray(im, dtype=np.uint8) for im in images])


__all__ = [
    "KINDS", "PROPERTY_DIM", "REGISTRATION_FREE", "IdentitySplit", "PropertyTargets", "EvalItem", "TrainingPlan",
    "as_array", "concept_items", "make_split", "property_loss", "property_targets", "registration_photos",
    "frozen_items", "training_samples",
]
