"""Generator backends share one protocol; the diffusers backend is optional."""

from __future__ import annotations

import importlib.util

import pytest

from slc.cat.edits import SamplingPlan, sample_edits
from slc.cat.generators import DiffusersGenerator, Generator, ProceduralGenerator, tree_prompt
from slc.cat.render import render
from slc.cat.world import WORLD_VOCABULARY, world_tree


def test_procedural_generator_implements_protocol_and_uses_the_sample_seed():
    gen = ProceduralGenerator(size=32)
    assert isinstance(gen, Generator)
    s = sample_edits("c1", world_tree("star", "red"), SamplingPlan(positives=1, easy=0, hard=0), WORLD_VOCABULARY)[0]
    img = gen.generate(s)
    assert img.size == (32, 32)
    assert img.tobytes() == render(s.tree, size=32, seed=s.render_seed).tobytes()
    assert "star" in tree_prompt(s.tree) and "colour red" in tree_prompt(s.tree)
    with pytest.raises(ValueError):
        ProceduralGenerator(size=4)


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is not None, reason="diffusers is installed")
def test_diffusers_generator_says_how_to_install_when_missing():
    with pytest.raises(ImportError, match="pip install diffusers"):
        DiffusersGenerator(pipeline=object())


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None,
                    reason="diffusers is an optional extra and is not installed here (pip install diffusers)")
def test_diffusers_generator_with_a_pipeline_object():
    from PIL import Image

    class _Out:
        images = [Image.new("RGB", (16, 16))]

    gen = DiffusersGenerator(pipeline=lambda **kw: _Out(), size=16, steps=1)
    s = sample_edits("c1", world_tree("star", "red"), SamplingPlan(positives=1, easy=0, hard=0), WORLD_VOCABULARY)[0]
    assert gen.generate(s).size == (16, 16)
