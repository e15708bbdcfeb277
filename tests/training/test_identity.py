"""The identity benchmark's data rules, its scoring, and the reference-recognition path end to end on a tiny run.

Real objects throughout: the concept-world renderer, a from-scratch tiny Idefics3 trained for a few seconds
(its numbers mean nothing; what is checked is what the pipeline does with them), the runtime's SmallVLM and
adapter-bank format. The trained, shipped bank is checked for its scores in tests/training/test_shipped_bank.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from slc.cat.world import OOV_PALETTE, describe
from slc.training.identity_data import TrainingPlan, make_split, frozen_items, training_samples


@pytest.fixture(scope="module")
def split():
    return make_split(0)


def test_splits_hold_concepts_pairs_and_colours_out_of_training(split):
    train = {c.name for c in split.train}
    held = [*split.validation, *split.test, *split.heldout_validation, *split.heldout_test]
    assert train.isdisjoint(c.name for c in held)
    pairs = set(split.heldout_pairs)
    assert all((c.tree.root, c.tree.identity()["colour"]) not in pairs for c in split.train)
    assert all((c.tree.root, c.tree.identity()["colour"]) in pairs for c in (*split.heldout_validation, *split.heldout_test))
    assert all(c.tree.identity()["colour"] in OOV_PALETTE for c in (*split.oov_validation, *split.oov_test))
    assert make_split(0) == split and make_split(1).test != split.test  # deterministic, and splits differ


def test_no_training_photo_shows_a_held_out_identity_or_a_withheld_pair(split):
    held = {(t.root, tuple(sorted(t.identity().items()))) for t in split.forbidden()}
    pairs = set(split.heldout_pairs)
    kinds = set()
    for _, s in itertools.islice(training_samples(split, TrainingPlan(), seed=3), 3000):
        kinds.add(s.difficulty)
        assert (s.tree.root, tuple(sorted(s.tree.identity().items()))) not in held
        assert (s.tree.root, s.tree.identity()["colour"]) not in pairs
    assert {"positive", "easy", "hard-1", "twin"} <= kinds


def test_frozen_test_photos_by_kind(split):
    items = frozen_items(split.test[:6], "in-distribution", seed=11)
    again = frozen_items(split.test[:6], "in-distribution", seed=11)
    assert [np.asarray(a.image).tobytes() for a in items] == [np.asarray(b.image).tobytes() for b in again]
    kinds = {i.kind for i in items}
    assert kinds == {"positive", "one-attribute", "multi-attribute", "other-category", "twin"}
    assert all(i.expected_present == (i.kind == "positive") for i in items)
    twins = [i for i in items if i.kind == "twin"]
    assert twins and all(i.detail in ("shade", "mark", "aspect", "pattern_scale", "accessory_colour") for i in twins)
    shifted = frozen_items(split.test[:6], "shifted", seed=11, shifted=True, crowd=split.test[:6])
    assert all(i.group == "shifted" and "=" in i.detail for i in shifted)
    assert any("+2 objects" in i.detail for i in shifted)


def test_thresholds_and_weighted_cells_by_hand():
    from slc.training.identity_benchmark import best_threshold, cell, paired_difference
    from slc.training.identity_data import EvalItem

    items = [EvalItem(concept="c", group="g", kind=k, expected_present=k == "positive", image=None)
             for k in ("positive", "positive", "twin", "twin")]
    assert 0.4 < best_threshold([0.9, 0.8, 0.3, 0.5], items) < 0.8
    rows = [{"run": "r", "concept": c, "group": "g", "kind": k, "detail": "shade", "present": k == "positive",
             "decisions": {"a": d, "b": e}}
            for c, k, d, e in (("x", "positive", True, True), ("x", "twin", False, True), ("y", "positive", True, False),
                               ("y", "twin", True, True), ("y", "one-attribute", False, False))]
    # a: positives 2/2, twins 1/2 rejected -> (1 + 0.5) / 2; b: positives 1/2, twins 0/2 -> 0.25
    assert cell(rows, "a", kind="twin", n_boot=0)["value"] == 0.75
    assert cell(rows, "b", kind="twin", n_boot=0)["value"] == 0.25
    assert cell(rows, "a", kind=None, n_boot=0)["value"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    d = paired_difference(rows, "a", "b", kind="twin", n_boot=200)
    assert d["value"] == 0.5 and d["lo"] <= 0.5 <= d["hi"]


def test_identity_text_round_trips():
    from slc.agent.concept_prompts import identity_text, parse_identity_text
    from slc.agent.detection import ConceptQuery

    q = ConceptQuery(name="x", category="star", attributes={"colour": "red", "pattern": "solid", "accessory": "none"})
    assert parse_identity_text(identity_text(q)) == ("star", q.attributes)
    assert parse_identity_text("a fluffy golden dog in a garden") is None and parse_identity_text("") is None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, split):
    """A from-scratch tiny model trained for a few CPU-seconds, written as a reference bank."""
    from slc.agent.loading import load_vlm
    from slc.training.bank import write_reference_bank
    from slc.training.data import WORLD_WORDS
    from slc.training.identity_training import IdentityTrainConfig, train_identity
    from slc.training.scratch import build_scratch_vlm

    root = tmp_path_factory.mktemp("identity")
    init = build_scratch_vlm("idefics3", root / "init", seed=0, extra_words=WORLD_WORDS)
    model, processor = load_vlm(init, device="cpu", dtype="float32")
    cfg = IdentityTrainConfig(budget_cpu_s=8, pool_queries=150, lm_share=0.3, concepts_per_step=4, queries_per_concept=3,
                              lm_batch=4, torch_threads=None)
    run = train_identity(model, processor, split, cfg, log=None)
    bank = write_reference_bank(root / "bank", model, processor, run.head, reference_threshold=0.0, likelihood_threshold=0.2)
    return run, bank


def test_a_run_trains_both_paths_within_its_budget(tiny_run):
    run, _ = tiny_run
    assert run.reference_steps > 0 and run.language_steps > 0 and run.steps == run.reference_steps + run.language_steps
    assert run.render_cpu_s > 0 and run.cpu_s >= 8


def test_a_reference_bank_decides_through_smallvlm_by_the_reference_photos(tiny_run, split, tmp_path):
    """The runtime loads the bank's base, protocol and head; a concept with photos is scored (every photo encoded
    once), one without photos comes back "unknown" with the reason, never a silent "absent"."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.small_vlm import SmallVLM
    from slc.training.identity_data import registration_photos

    _, bank = tiny_run
    vlm = SmallVLM.from_pretrained(bank.base_model, bank=bank, locate="never")
    assert vlm.protocol.name == "reference" and vlm.protocol.uses_references
    c = split.test[0]
    refs = []
    for i, im in enumerate(registration_photos(c)):
        path = tmp_path / f"ref{i}.png"
        im.save(path)
        refs.append(path)
    passes = []
    vlm.add_pass_hook(passes.append)
    photo = frozen_items([c], "in-distribution")[0].image
    with_refs = ConceptQuery(name=c.name, reference_images=refs)
    other = ConceptQuery(name="other", reference_images=refs[:1])
    bare = ConceptQuery(name="bare")
    dets = vlm.detect(photo, [with_refs, other, bare])
    assert [d.status != "unknown" for d in dets] == [True, True, False]
    assert "no reference photos" in dets[2].error
    assert passes == ["forward"]  # the photo and both concepts' photos in ONE pass of the vision path
