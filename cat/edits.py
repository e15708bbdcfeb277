"""Tree edits with explicit controls: positives, easy negatives, hard negatives (k identity changes).

Rules (ours; the CaT paper publishes none, see SLC-PROTOCOL.md):
- positive: every identity leaf and the root kept; ``n_free = max(1, round(diversity * #free dims))``
  free dimensions changed, each to a value at most ``max(1, round(diversity * (len(values) - 1)))`` steps
  from the reference value in the vocabulary's order (ordinal dims: scale, lighting, ...; nominal dims
  such as background take any other value). diversity=0 keeps the reference free leaves (exact copies).
- easy negative: root changed to another category (plus ``easy_extra_changes`` identity leaves).
- hard-k negative: root kept, exactly k identity leaves changed (k=1 hardest), drawn from ``k_weights``.
- twin negative (trees with instance leaves, concept world v2): root and identity leaves kept, so the
  identity TEXT is the same; one instance leaf changed by a visible margin (the world's ``twin`` rule, e.g.
  :func:`slc.cat.world.twin_change`). Only the photos tell a concept from its twin.
- Negatives get the same free-dimension variation as positives (``vary_free_in_negatives``), so a model
  cannot tell positives from negatives by pose/background alone.
Every :class:`Sample` records the edited tree, each change (dim, kind, from, to), its difficulty and the
expected answer. Sampling is deterministic: the RNG is seeded from ``(plan.seed, concept name)``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from slc.agent.errors import ConceptTreeError
from slc.cat.tree import ConceptTree

ChangeKind = Literal["root", "identity", "free", "instance"]

#: A world's rule for a look-alike twin: (instance dimension, new value) for a tree, drawn with the rng.
TwinRule = Callable[[ConceptTree, random.Random], tuple[str, str]]


class Vocabulary(BaseModel):
    """The values each dimension may take; order matters for ``ordinal`` dims ("how far" a change goes)."""

    roots: list[str] = Field(description="Categories an easy negative may switch to.")
    values: dict[str, list[str]] = Field(description="Allowed values per dimension name.")
    ordinal: list[str] = Field(default_factory=list, description="Dims whose value order is a distance.")

    def alternatives(self, dim: str, current: str) -> list[str]:
        if dim not in self.values:
            raise ConceptTreeError(f"vocabulary has no values for dimension {dim!r}; add them to edit it")
        return [v for v in self.values[dim] if v != current]


class Change(BaseModel):
    dim: str = Field(description="'root' for the category, else the dimension name.")
    kind: ChangeKind
    old: str
    new: str


class Edit(BaseModel):
    changes: list[Change] = Field(default_factory=list)

    def changed(self, kind: ChangeKind | None = None) -> list[str]:
        return [c.dim for c in self.changes if kind is None or c.kind == kind]


class Sample(BaseModel):
    """One synthetic sample: the tree to render, how it differs from the concept, and the right answer."""

    id: str
    concept: str = Field(description="Concept name without brackets, e.g. 'c017'.")
    tree: ConceptTree = Field(description="The edited tree the image must show.")
    edit: Edit
    difficulty: str = Field(description="'positive', 'easy', 'hard-<k>' or 'twin'.")
    expected_present: bool = Field(description="Is the concept in the image? (the recognition answer)")
    render_seed: int = Field(description="Seed for the generator's continuous jitter.")

    @property
    def expected_answer(self) -> str:
        return "Yes" if self.expected_present else "No"

    @property
    def is_positive(self) -> bool:
        return self.difficulty == "positive"

    @property
    def is_hard(self) -> bool:
        return self.difficulty.startswith("hard")


class SamplingPlan(BaseModel):
    """How many samples of each kind per concept, and how they vary (a small config, peft-style)."""

    positives: int = Field(default=8, ge=0)
    easy: int = Field(default=4, ge=0)
    hard: int = Field(default=8, ge=0)
    twins: int = Field(default=0, ge=0, description="Look-alike twins: same identity text, one instance leaf changed.")
    k_weights: dict[int, float] = Field(default_factory=lambda: {1: 0.6, 2: 0.3, 3: 0.1},
                                        description="Distribution of k (identity changes) of hard negatives.")
    diversity: float = Field(default=0.5, ge=0.0, le=1.0, description="How many free dims vary, how far.")
    easy_extra_changes: int = Field(default=0, ge=0, description="Identity leaves also changed in easy ones.")
    vary_free_in_negatives: bool = True
    seed: int = 0

    @field_validator("k_weights")
    @classmethod
    def _valid_k(cls, v: dict[int, float]) -> dict[int, float]:
        if not v or any(k < 1 for k in v) or any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("k_weights needs keys >= 1 and non-negative weights with a positive sum")
        return {int(k): float(w) for k, w in sorted(v.items())}

    @model_validator(mode="after")
    def _something(self) -> "SamplingPlan":
        if self.positives + self.easy + self.hard + self.twins == 0:
            raise ValueError("the plan asks for no samples at all")
        return self

    @classmethod
    def parse_k(cls, spec: str) -> dict[int, float]:
        """'1' -> {1: 1}; '1,2' -> uniform; '1:0.6,2:0.4' -> weights (the CLI's --k)."""
        out: dict[int, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            k, _, w = part.partition(":")
            out[int(k)] = float(w) if w else 1.0
        return out


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _vary_free(tree: ConceptTree, vocab: Vocabulary, diversity: float, rng: random.Random) -> list[Change]:
    free = [d for d in tree.free_dims() if d in vocab.values and len(vocab.values[d]) > 1]
    if diversity <= 0 or not free:
        return []
    n = min(len(free), max(1, round(diversity * len(free))))
    changes = []
    for dim in sorted(rng.sample(free, n)):
        cur = tree.get(dim)
        options = vocab.alternatives(dim, cur)
        if dim in vocab.ordinal and cur in vocab.values[dim]:
            order = vocab.values[dim]
            reach = max(1, round(diversity * (len(order) - 1)))
            i = order.index(cur)
            options = [v for v in options if abs(order.index(v) - i) <= reach]
        changes.append(Change(dim=dim, kind="free", old=cur, new=rng.choice(options)))
    return changes


def _change_identity(tree: ConceptTree, vocab: Vocabulary, k: int, rng: random.Random) -> list[Change]:
    editable = [d for d in tree.identity_dims() if d in vocab.values and vocab.alternatives(d, tree.get(d))]
    if k > len(editable):
        raise ConceptTreeError(
            f"cannot change {k} identity leaves of a {tree.root!r} tree: only {len(editable)} editable "
            f"identity dimension(s) ({editable}); lower k or add values to the vocabulary"
        )
    return [Change(dim=d, kind="identity", old=tree.get(d), new=rng.choice(vocab.alternatives(d, tree.get(d))))
            for d in sorted(rng.sample(editable, k))]


def _apply(tree: ConceptTree, changes: list[Change]) -> ConceptTree:
    root = next((c.new for c in changes if c.kind == "root"), None)
    return tree.with_values({c.dim: c.new for c in changes if c.kind != "root"}, root=root)


def sample_edits(concept: str, tree: ConceptTree, plan: SamplingPlan, vocab: Vocabulary,
                 forbidden: list[ConceptTree] | None = None, twin: TwinRule | None = None) -> list[Sample]:
    """All samples the plan asks for, for one concept, in a fixed order (positives, easy, hard, twins).

    A negative that happens to equal another concept is still "not this concept", so it is allowed; a
    negative can never equal THIS concept's identity (the rules change the root or >= 1 identity leaf).
    ``forbidden`` lists trees whose identity negatives must avoid anyway (e.g. held-out test concepts
    whose look must stay unseen in training); an edit landing on one is re-drawn. ``twin``: the world's
    rule for a look-alike twin (needed when ``plan.twins`` > 0).
    """
    if plan.twins and (twin is None or not tree.instance_dims()):
        raise ConceptTreeError("twin negatives need a tree with instance leaves and the world's twin rule "
                               "(e.g. make_world(..., instances=True) and slc.cat.world.twin_change)")
    rng = _rng(plan.seed, concept)
    avoid = [(t.root, tuple(sorted(t.identity().items()))) for t in forbidden or ()]
    samples: list[Sample] = []

    def add(kind: str, idx: int, changes: list[Change], present: bool) -> None:
        edited = _apply(tree, changes)
        samples.append(Sample(
            id=f"{concept}-{kind}-{idx:04d}", concept=concept, tree=edited, edit=Edit(changes=changes),
            difficulty=kind, expected_present=present, render_seed=rng.getrandbits(31)))

    def negative(make) -> list[Change]:
        for _ in range(50):  # re-draw when an edit lands on a forbidden identity
            changes = make()
            edited = _apply(tree, changes)
            if (edited.root, tuple(sorted(edited.identity().items()))) not in avoid:
                return changes
        return changes

    for i in range(plan.positives):
        add("positive", i, _vary_free(tree, vocab, plan.diversity, rng), True)

    other_roots = [r for r in vocab.roots if r != tree.root]
    if plan.easy and not other_roots:
        raise ConceptTreeError("easy negatives need another root category in the vocabulary")
    for i in range(plan.easy):
        def make_easy() -> list[Change]:
            ch = [Change(dim="root", kind="root", old=tree.root, new=rng.choice(other_roots))]
            if plan.easy_extra_changes:
                ch += _change_identity(tree, vocab, min(plan.easy_extra_changes, len(tree.identity_dims())), rng)
            if plan.vary_free_in_negatives:
                ch += _vary_free(tree, vocab, plan.diversity, rng)
            return ch
        add("easy", i, negative(make_easy), False)

    ks, weights = list(plan.k_weights), list(plan.k_weights.values())
    for i in range(plan.hard):
        k = rng.choices(ks, weights)[0]

        def make_hard(k: int = k) -> list[Change]:
            ch = _change_identity(tree, vocab, k, rng)
            if plan.vary_free_in_negatives:
                ch += _vary_free(tree, vocab, plan.diversity, rng)
            return ch
        changes = negative(make_hard)
        edited = _apply(tree, changes)
        samples.append(Sample(
            id=f"{concept}-hard-{i:04d}", concept=concept, tree=edited, edit=Edit(changes=changes),
            difficulty=f"hard-{k}", expected_present=False, render_seed=rng.getrandbits(31)))
    for i in range(plan.twins):
        dim, new = twin(tree, rng)  # type: ignore[misc]
        changes = [Change(dim=dim, kind="instance", old=tree.get(dim), new=new)]
        if plan.vary_free_in_negatives:
            changes += _vary_free(tree, vocab, plan.diversity, rng)
        add("twin", i, changes, False)
    return samples


__all__ = ["Change", "ChangeKind", "Edit", "Sample", "SamplingPlan", "TwinRule", "Vocabulary", "sample_edits"]
