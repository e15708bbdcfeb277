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
