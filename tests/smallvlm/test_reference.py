"""The reference protocol's view of a photo: the image tokens the language model reads, one matrix per photo,
the same whether photos come alone or in a batch, for every family the runtime loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from slc.agent.loading import load_vlm
from slc.agent.reference import ReferenceHead, ReferenceHeadConfig, image_tokens


def _photos() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in ((64, 64), (80, 48), (48, 72), (64, 64))]


@pytest.mark.parametrize("family", ["idefics3", "qwen2_vl", "qwen2_5_vl", "llava_onevision"])
def test_image_tokens_per_photo_match_in_a_batch(tiny_vlm_path, family):
    model, processor = load_vlm(tiny_vlm_path(family), device="cpu", dtype="float32")
    photos = _photos()
    with torch.inference_mode():
        batch = image_tokens(model, processor, photos)
        alone = [image_tokens(model, processor, [p])[0] for p in photos]
    assert len(batch) == len(photos)
    for a, b in zip(batch, alone):
        assert a.shape == b.shape and a.shape[-1] == model.config.text_config.hidden_size
        assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(batch[0].mean(0), batch[1].mean(0))


def test_head_saves_and_loads_the_same_decisions(tmp_path):
    head = ReferenceHead(ReferenceHeadConfig(feature_dim=8, embed_dim=16, hidden_dim=32, property_dim=5, threshold=0.3))
    tokens = [torch.randn(4, 8) for _ in range(3)]
    sig = head.signature(*head.describe(tokens))
    loaded = ReferenceHead.load(head.save(tmp_path / "h"))
    assert loaded.config == head.config
    assert torch.allclose(loaded.score(sig[:1], sig[1:2]), head.score(sig[:1], sig[1:2]))
    from slc.agent.errors import AdapterBankError

    with pytest.raises(AdapterBankError, match="no reference head"):
        ReferenceHead.load(tmp_path / "empty")


@pytest.mark.parametrize("family", ["idefics3", "qwen2_vl", "qwen2_5_vl", "llava_onevision"])
def test_every_family_recognizes_by_reference_photos_through_smallvlm(tiny_vlm_path, family, tmp_path):
    """A reference bank on each family's tiny build (its head untrained: the decisions mean nothing, the path
    is what is checked): SmallVLM loads base + head + protocol, scores a concept by its photos in one pass of
    the vision path, and a photo compared with itself gets the same score however the batch is made up."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import write_reference_bank

    model, processor = load_vlm(tiny_vlm_path(family), device="cpu", dtype="float32")
    head = ReferenceHead(ReferenceHeadConfig(feature_dim=model.config.text_config.hidden_size, embed_dim=16,
                                             hidden_dim=32, property_dim=4))
    bank = write_reference_bank(tmp_path / "bank", model, processor, head, reference_threshold=0.0)
    vlm = SmallVLM.from_pretrained(bank.base_model, bank=bank, locate="never")
    assert vlm.protocol.name == "reference"
    photos = _photos()
    refs = []
    for i, p in enumerate(photos[:2]):
        refs.append(tmp_path / f"ref{i}.png")
        p.save(refs[-1])
    passes = []
    vlm.add_pass_hook(passes.append)
    a = ConceptQuery(name="a", reference_images=refs[:1])
    b = ConceptQuery(name="b", reference_images=refs)
    dets = vlm.detect_batch(photos, [a, b])
    assert passes == ["forward"]
    assert all(d.status in ("present", "absent") for row in dets for d in row)
    alone = vlm.detect(photos[0], [a])[0]
    assert alone.confidence == pytest.approx(dets[0][0].confidence, abs=1e-4)


def test_cells_tiles_and_views_of_a_photo():
    """The 3x3 names are the concept world's (its renderer's location truth), tiles cover the photo once, a
    blanked region is the border colour and a kept region stays where and as large as it was."""
    from slc.agent.reference import CELLS, blanked, border_colour, cell_name, kept, tile_boxes
    from slc.cat.render import location_name
    from slc.cat.world import POSITIONS

    assert CELLS == POSITIONS
    for x in range(0, 64, 3):
        for y in range(0, 48, 5):
            assert cell_name(x / 64, y / 48) == location_name(x * 48 / 64, y, 48)  # fractions of a non-square photo
    boxes = tile_boxes(4)
    assert len(boxes) == 16 and sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) == pytest.approx(1.0)
    a = np.full((48, 64, 3), 200, np.uint8)
    a[10:20, 40:60] = (255, 0, 0)
    photo = Image.fromarray(a)
    assert border_colour(photo) == (200, 200, 200)
    box = (40 / 64, 10 / 48, 60 / 64, 20 / 48)
    assert (np.asarray(blanked(photo, box, (200, 200, 200))) == 200).all()
    alone = kept(photo, (0.5, 0.0, 1.0, 0.5), (0, 0, 0))
    assert alone.size == photo.size and np.array_equal(np.asarray(alone)[10:20, 40:60], a[10:20, 40:60])
    assert (np.asarray(alone)[30:] == 0).all()


def test_occlusion_regions_are_the_peaks_of_the_map():
    from slc.agent.reference import occlusion_regions

    m = torch.zeros(6, 6)
    m[1, 1], m[1, 2], m[4, 4] = 4.0, 2.0, 1.0  # two objects: top left (stronger) and bottom right
    m[0, 5] = 0.05  # noise under the peak share
    regions = occlusion_regions(m.flatten(), peak=0.1, radius=1)
    assert sorted(r.cell for r in regions) == ["bottom right", "top left"]
    top_left = next(r for r in regions if r.cell == "top left")
    assert top_left.box == (0.0, 0.0, 3 / 6, 3 / 6)
    assert top_left.centre == pytest.approx(((4 * 1.5 + 2 * 2.5) / 6 / 6, 1.5 / 6))  # weighted by the map
    assert occlusion_regions(torch.zeros(36), peak=0.1, radius=1) == []
    with pytest.raises(ValueError, match="square"):
        occlusion_regions(torch.ones(10), peak=0.1, radius=1)


@pytest.mark.parametrize("family", ["idefics3", "qwen2_vl", "qwen2_5_vl", "llava_onevision"])
def test_every_family_locates_by_reference_photos(tiny_vlm_path, family, tmp_path):
    """Locating by the head is family-agnostic (the image tokens of any family; the head untrained, so the
    cell means nothing): with locate="always" every pair gets its region scores as evidence, a present one its
    3x3 cell, in four vision passes (scoring, the references, the tile-blanked copies, the regions), whatever
    the number of concepts; locate="never" adds none."""
    from slc.agent.detection import ConceptQuery
    from slc.agent.reference import CELLS
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import write_reference_bank

    model, processor = load_vlm(tiny_vlm_path(family), device="cpu", dtype="float32")
    head = ReferenceHead(ReferenceHeadConfig(feature_dim=model.config.text_config.hidden_size, embed_dim=16,
                                             hidden_dim=32, property_dim=4))
    bank = write_reference_bank(tmp_path / "bank", model, processor, head, reference_threshold=-1e6)  # all present
    vlm = SmallVLM.from_pretrained(bank.base_model, bank=bank, locate="always", locate_grid=3)
    photos = _photos()
    refs = []
    for i, p in enumerate(photos[:2]):
        refs.append(tmp_path / f"ref{i}.png")
        p.save(refs[-1])
    concepts = [ConceptQuery(name="a", reference_images=refs[:1]), ConceptQuery(name="b", reference_images=refs)]
    passes = []
    vlm.add_pass_hook(passes.append)
    dets = vlm.detect(photos[1], concepts)
    assert passes == ["forward"] * 4
    assert any(d.status == "present" for d in dets)
    for d in dets:
        assert d.evidence.startswith("where") and d.raw_output is None
        assert (d.location_absolute in CELLS) if d.status == "present" else d.location_absolute is None
    passes.clear()
    assert all(d.location_absolute is None for d in vlm.detect(photos[1], concepts, locate="never"))
    assert passes == ["forward"]
