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
