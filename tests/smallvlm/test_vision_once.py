"""Each distinct image of a batch goes through the vision encoder once (issue 19, scan: K concepts asked about
one photo were K encodings), and the detections do not change. Real tiny checkpoint; the speed is
benchmarks/scan_concepts.py's to measure."""

from __future__ import annotations

import contextlib

import pytest

from slc.agent import small_vlm
from slc.agent.detection import ConceptQuery


@pytest.mark.parametrize("family", ["idefics3", "llava_onevision"])
def test_each_image_is_encoded_once_and_detections_are_unchanged(tiny_vlm_path, photos, monkeypatch, family):
    vlm = small_vlm.SmallVLM.from_pretrained(tiny_vlm_path(family), device="cpu", min_yes_no_mass=0.0, max_new_tokens=8)
    tower = small_vlm._vision_tower(vlm.model)
    assert tower is not None
    rows: list[int] = []
    forward = type(tower).forward

    def counting(self, pixel_values=None, *args, **kwargs):
        rows.append(int(pixel_values.shape[0]))
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(type(tower), "forward", counting)
    images = photos[:3]
    concepts = [ConceptQuery(name=f"c{i}", description=f"thing {i}", category="dog") for i in range(4)]
    once = vlm.detect_batch(images, concepts, locate="never")
    encoded_once, rows[:] = sum(rows), []
    monkeypatch.setattr(small_vlm, "vision_once", lambda model: contextlib.nullcontext())
    per_pair = vlm.detect_batch(images, concepts, locate="never")
    assert sum(rows) == encoded_once * len(concepts)  # each image's crops once, not once per concept
    assert encoded_once >= len(images)
    for a, b in zip(once, per_pair):
        assert [(d.concept, d.status) for d in a] == [(d.concept, d.status) for d in b]
        assert [d.confidence for d in a] == pytest.approx([d.confidence for d in b], abs=1e-5)
    assert "forward" not in vars(tower)  # the wrapper is gone after the call
