"""The renderer draws exactly what the tree says (pixel checks) and reports the true location."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from slc.agent.errors import ConceptTreeError
from slc.cat.render import location_name, render, render_with_info
from slc.cat.world import (
    ACCESSORIES, BACKGROUNDS, LIGHTING, PALETTE, PATTERNS, POSITIONS, SHAPES, world_tree,
)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int32)


@pytest.mark.parametrize("shape,colour", list(zip(SHAPES, PALETTE)))
def test_centre_pixel_is_the_tree_colour_and_corner_is_the_background(shape, colour):
    tree = world_tree(shape, colour, background="beige")
    img, info = render_with_info(tree, size=64, seed=1)
    assert img.size == (64, 64) and img.mode == "RGB"
    cx, cy = (int(round(v)) for v in info.center)
    # the centre of a heart/star/cross is inside its body for every shape we draw
    assert np.abs(_arr(img)[cy, cx] - PALETTE[colour]).max() <= 2
    assert np.abs(_arr(img)[1, 1] - BACKGROUNDS["beige"]).max() <= 2


def test_palette_is_unambiguous_under_every_lighting(nearest_palette, body_pixels):
    for (a, ca), (b, cb) in itertools.combinations(PALETTE.items(), 2):
        assert np.linalg.norm(np.subtract(ca, cb)) >= 100, (a, b)
    for colour, level in itertools.product(PALETTE, LIGHTING):
        img = render(world_tree("square", colour, lighting=level, scale="large"), seed=0)
        assert nearest_palette(np.median(body_pixels(img), axis=0)) == colour, (colour, level)


def _ink_share(px: np.ndarray) -> float:
    bright = np.percentile(px.max(axis=1), 90)
    return float(np.mean(px.max(axis=1) < 0.72 * bright))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_presence(pattern, nearest_palette, body_pixels):
    img = render(world_tree("circle", "green", pattern, scale="large"), seed=2)
    px = body_pixels(img)
    share = _ink_share(px)
    if pattern == "solid":
        assert share < 0.03
    else:  # stripes/checks cover ~half, dots ~a quarter, in a darker shade of the same colour
        assert 0.12 < share < 0.7
        bright = px[px.max(axis=1) >= 0.72 * np.percentile(px.max(axis=1), 90)]
        assert nearest_palette(np.median(bright, axis=0)) == "green"  # the body keeps its colour


@pytest.mark.parametrize("accessory", ACCESSORIES)
def test_accessory_is_drawn_above_or_below_the_body(accessory):
    img, info = render_with_info(world_tree("hexagon", "blue", accessory=accessory), seed=3)
    a = _arr(img)
    dark = a.max(axis=2) < 60
    cy, r = info.center[1], info.body_radius
    above, below = dark[: int(cy - r)].sum(), dark[int(cy + r) + 1:].sum()
    expect = {"none": (0, 0), "hat": (1, 0), "antenna": (1, 0), "bowtie": (0, 1)}[accessory]
    assert (above > 10, below > 10) == (bool(expect[0]), bool(expect[1]))
    if accessory == "hat":  # a hat is wide (brim), an antenna thin
        assert dark[: int(cy - r)].any(axis=0).sum() > 0.9 * r


def test_position_truth_and_clutter_relation():
    for pos in POSITIONS:
        img, info = render_with_info(world_tree("circle", "red", position=pos, scale="small"), seed=4)
        assert info.location_absolute == pos
        assert location_name(*info.center, 64) == pos
        x0, y0, x1, y1 = info.bbox
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    _, info = render_with_info(world_tree("circle", "red", clutter="many"), seed=5)
    assert len(info.clutter) >= 3 and info.location_relative is not None
    _, info = render_with_info(world_tree("circle", "red"), seed=5)
    assert info.clutter == [] and info.location_relative is None


def test_same_seed_same_pixels_and_other_sizes():
    tree = world_tree("star", "purple", "dotted", "bowtie", noise="high", texture="speckled", clutter="few")
    assert render(tree, seed=9).tobytes() == render(tree, seed=9).tobytes()
    assert render(tree, seed=9).tobytes() != render(tree, seed=10).tobytes()
    assert render(tree, size=128, seed=1).size == (128, 128)
    assert render(tree, free_values={"position": "top left"}, seed=1).tobytes() != render(tree, seed=1).tobytes()


def test_unknown_values_are_clear_errors():
    with pytest.raises(ConceptTreeError, match="shape='dragon'"):
        render(world_tree("dragon", "red"))
    with pytest.raises(ConceptTreeError, match="colour='chartreuse'"):  # teal is a test-only (v2) colour
        render(world_tree("star", "chartreuse"))
    with pytest.raises(ValueError):
        render(world_tree("star", "red"), size=8)
