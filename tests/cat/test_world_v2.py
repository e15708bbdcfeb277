"""Concept world v2: instances (visual detail no word names), look-alike twins, test-only colours, crowds."""

from __future__ import annotations

import random

import numpy as np
import pytest

from slc.agent.errors import ConceptTreeError
from slc.cat import world as W
from slc.cat.edits import SamplingPlan, sample_edits
from slc.cat.render import render, render_with_info
from slc.cat.world import describe, make_world, twin_change, twin_of, world_tree


def _body(img) -> np.ndarray:
    """Boolean mask of saturated (object body) pixels."""
    rgb = np.asarray(img, dtype=np.float32) / 255.0
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    return ((mx - mn) / np.maximum(mx, 1e-6) > 0.35) & (mx > 0.2)


def test_v1_worlds_are_unchanged_and_v2_adds_only_instance_leaves():
    v1, v2 = make_world(40, seed=3), make_world(40, seed=3, instances=True)
    for a, b in zip(v1, v2):
        assert a.tree.identity() == b.tree.identity() and a.tree.root == b.tree.root
        assert a.tree.instance() == {} and set(b.tree.instance()) == set(W.INSTANCE_DIMS)
        assert a.description == b.description  # the identity text never mentions instance detail
    assert render(v1.concepts[0].tree, seed=1).tobytes() == render(
        world_tree(v1.concepts[0].tree.root, **v1.concepts[0].tree.identity()), seed=1).tobytes()


@pytest.mark.parametrize("dim", ["shade", "mark", "aspect"])
def test_a_twin_has_the_same_text_and_visibly_different_pixels(dim):
    wc = make_world(20, seed=1, instances=True).concepts[3]
    tree = wc.tree.with_values({"mark": "top" if dim != "mark" else "none"})
    twin = twin_of(tree, random.Random(0), dim)
    assert describe(twin) == describe(tree) and twin.same_identity(tree) and not twin.same_instance(tree)
    changed = [d for d in W.INSTANCE_DIMS if twin.instance()[d] != tree.instance()[d]]
    assert changed == [dim]
    a, b = (np.asarray(render(t, {"scale": "large"}, size=96, seed=5), dtype=np.float32) for t in (tree, twin))
    region = _body(render(tree, {"scale": "large"}, size=96, seed=5)) | _body(render(twin, {"scale": "large"}, size=96, seed=5))
    diff = np.abs(a - b)[region]
    if dim == "shade":  # every body pixel moves a little
        assert diff.mean() > 8.0
    else:  # a dot appears / moves, the outline changes: some body pixels change a lot
        assert (diff.max(axis=1) > 40).mean() > 0.03


def test_shade_twins_differ_across_the_colour_not_along_it():
    """A lighting change scales the colour; a shade twin moves it sideways, so lighting never explains it."""
    rng = random.Random(0)
    for wc in make_world(30, seed=2, instances=True):
        twin = twin_of(wc.tree, rng, "shade")
        colour = wc.tree.identity()["colour"]
        a = np.asarray(W.shade_rgb(colour, wc.tree.instance()["shade"]), dtype=float)
        b = np.asarray(W.shade_rgb(colour, twin.instance()["shade"]), dtype=float)
        unit = np.asarray(W.ALL_COLOURS[colour], dtype=float)
        unit /= np.linalg.norm(unit)
        d = a - b
        assert np.linalg.norm(d - d.dot(unit) * unit) >= W.TWIN_SHADE_MIN - 1.5  # integer rounding of the offset


def test_invisible_instance_leaves_are_never_the_twin_change():
    solid_plain = world_tree("circle", "red", "solid", "none", instance={})
    rng = random.Random(0)
    assert {twin_change(solid_plain, rng)[0] for _ in range(50)} <= {"shade", "mark", "aspect"}
    with pytest.raises(ConceptTreeError, match="not visible"):
        twin_change(solid_plain, rng, "pattern_scale")
    with pytest.raises(ConceptTreeError, match="instance leaves"):
        twin_change(world_tree("circle", "red"), rng)


def test_cat_twin_negatives_keep_the_text_and_change_one_instance_leaf():
    wc = make_world(10, seed=0, instances=True).concepts[0]
    plan = SamplingPlan(positives=2, easy=1, hard=1, twins=4, seed=3)
    samples = sample_edits(wc.name, wc.tree, plan, W.WORLD_VOCABULARY, twin=twin_change)
    twins = [s for s in samples if s.difficulty == "twin"]
    assert len(twins) == 4 and not any(s.expected_present for s in twins)
    for s in twins:
        assert s.tree.same_identity(wc.tree) and not s.tree.same_instance(wc.tree)
        assert [c.kind for c in s.edit.changes if c.kind != "free"] == ["instance"]
    for s in samples:
        if s.is_positive:
            assert s.tree.same_instance(wc.tree)  # positives keep every instance leaf
    with pytest.raises(ConceptTreeError, match="twin"):
        sample_edits(wc.name, wc.tree, plan, W.WORLD_VOCABULARY)  # no twin rule given


def test_test_only_colours_render_as_themselves():
    for colour, rgb in W.OOV_PALETTE.items():
        img = render(world_tree("square", colour, scale="large"), seed=0)
        body = np.asarray(img)[_body(img)]
        median = np.median(body, axis=0)
        nearest = min(W.ALL_COLOURS, key=lambda c: np.linalg.norm(np.subtract(W.ALL_COLOURS[c], median)))
        assert nearest == colour
        assert colour not in W.WORLD_VOCABULARY.values["colour"]  # never offered to training edits


def test_shifted_free_values_render_and_companions_share_the_photo():
    tree = make_world(5, seed=0, instances=True).concepts[0].tree
    for dim, values in W.SHIFTED_FREE.items():
        for v in values:
            render(tree, {dim: v}, seed=0)  # every shifted value is drawable
    others = [c.tree for c in make_world(5, seed=0, instances=True).concepts[1:3]]
    alone, _ = render_with_info(tree, {"position": "top left", "scale": "small"}, size=96, seed=4)
    crowd, info = render_with_info(tree, {"position": "top left", "scale": "small"}, size=96, seed=4, companions=others)
    assert _body(crowd).sum() > _body(alone).sum() * 1.5  # the other objects are there
    x0, y0, x1, y1 = info.bbox  # and the main object is untouched by them
    assert np.array_equal(np.asarray(crowd)[y0:y1, x0:x1], np.asarray(alone)[y0:y1, x0:x1])
