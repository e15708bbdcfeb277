"""Tree edits: positives keep identity, negatives change exactly what the control says, deterministically."""

from __future__ import annotations

import pytest

from slc.agent.errors import ConceptTreeError
from slc.cat.edits import SamplingPlan, Vocabulary, sample_edits
from slc.cat.world import FREE_DIMS, WORLD_VOCABULARY, make_world, world_tree

TREE = world_tree("star", "red", "striped", "hat")


def _samples(**plan):
    return sample_edits("c001", TREE, SamplingPlan(**plan), WORLD_VOCABULARY)


def test_positives_keep_every_identity_leaf_and_vary_free_dims():
    ss = _samples(positives=50, easy=0, hard=0, diversity=0.5)
    assert len(ss) == 50
    for s in ss:
        assert s.difficulty == "positive" and s.expected_present and s.expected_answer == "Yes"
        assert s.tree.root == TREE.root and s.tree.identity() == TREE.identity()
        assert s.edit.changed("identity") == [] and s.edit.changed("root") == []
        assert len(s.edit.changes) == round(0.5 * len(FREE_DIMS))  # diversity -> how many free dims
        for c in s.edit.changes:  # the edit says exactly what changed, from what to what
            assert c.old == TREE.get(c.dim) and c.new == s.tree.get(c.dim) and c.old != c.new
        unchanged = set(FREE_DIMS) - set(s.edit.changed("free"))
        assert all(s.tree.get(d) == TREE.get(d) for d in unchanged)


def test_diversity_controls_how_many_and_how_far():
    assert all(not s.edit.changes for s in _samples(positives=5, easy=0, hard=0, diversity=0.0))
    full = _samples(positives=20, easy=0, hard=0, diversity=1.0)
    assert all(len(s.edit.changes) == len(FREE_DIMS) for s in full)
    low = _samples(positives=200, easy=0, hard=0, diversity=0.125)  # 1 free dim, at most 1 step on ordinal dims
    for s in low:
        (c,) = s.edit.changes
        if c.dim in WORLD_VOCABULARY.ordinal:
            order = WORLD_VOCABULARY.values[c.dim]
            assert abs(order.index(c.new) - order.index(c.old)) == 1


def test_easy_negatives_change_the_root_only():
    for s in _samples(positives=0, easy=30, hard=0):
        assert s.difficulty == "easy" and not s.expected_present
        assert s.tree.root != TREE.root and s.edit.changed("root") == ["root"]
        assert s.tree.identity() == TREE.identity()
    for s in _samples(positives=0, easy=10, hard=0, easy_extra_changes=1):
        assert len(s.edit.changed("identity")) == 1


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hard_negatives_change_exactly_k_identity_leaves(k):
    for s in _samples(positives=0, easy=0, hard=20, k_weights={k: 1.0}):
        assert s.difficulty == f"hard-{k}" and not s.expected_present and s.expected_answer == "No"
        assert s.tree.root == TREE.root
        changed = [d for d in TREE.identity_dims() if s.tree.get(d) != TREE.get(d)]
        assert sorted(changed) == sorted(s.edit.changed("identity")) and len(changed) == k


def test_k_mix_follows_weights_and_too_large_k_is_a_clear_error():
    ss = _samples(positives=0, easy=0, hard=400, k_weights={1: 3, 2: 1})
    n1 = sum(s.difficulty == "hard-1" for s in ss)
    assert 0.65 < n1 / 400 < 0.85 and {s.difficulty for s in ss} == {"hard-1", "hard-2"}
    with pytest.raises(ConceptTreeError, match="only 3 editable"):
        _samples(positives=0, easy=0, hard=1, k_weights={4: 1})
    with pytest.raises(ConceptTreeError, match="no values for dimension"):
        Vocabulary(roots=["a"], values={}).alternatives("fur", "x")


def test_same_seed_same_samples_other_seed_differs():
    a = _samples(positives=5, easy=5, hard=5, seed=7)
    b = _samples(positives=5, easy=5, hard=5, seed=7)
    c = _samples(positives=5, easy=5, hard=5, seed=8)
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
    assert [s.model_dump() for s in a] != [s.model_dump() for s in c]
    assert len({s.id for s in a}) == 15


def test_forbidden_identities_are_avoided():
    world = make_world(30, seed=0)
    forbidden = [c.tree for c in world.concepts[1:]]
    tree = world.concepts[0].tree
    keys = {(t.root, tuple(sorted(t.identity().items()))) for t in forbidden}
    for s in sample_edits("c0", tree, SamplingPlan(positives=0, easy=50, hard=50), WORLD_VOCABULARY, forbidden):
        assert (s.tree.root, tuple(sorted(s.tree.identity().items()))) not in keys


def test_plan_validation():
    with pytest.raises(ValueError):
        SamplingPlan(positives=0, easy=0, hard=0)
    with pytest.raises(ValueError):
        SamplingPlan(k_weights={0: 1.0})
    assert SamplingPlan.parse_k("1:0.6, 2:0.4") == {1: 0.6, 2: 0.4}
    assert SamplingPlan.parse_k("1,3") == {1: 1.0, 3: 1.0}
