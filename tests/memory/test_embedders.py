"""Embedders: real tiny CLIP (built offline) and the bundled all-MiniLM-L6-v2, through the protocols."""

from __future__ import annotations

import numpy as np
import pytest

from slc.agent.errors import ModelNotFoundError
from slc.memory.embedders import (
    HFImageEmbedder,
    ImageEmbedder,
    TextEmbedder,
    default_text_model_path,
    get_image_embedder,
    get_text_embedder,
)

from .conftest import noise_image


def test_tiny_clip_builds_fast_and_loads_with_auto_classes(tmp_path):
    import time

    from transformers import AutoImageProcessor, AutoModel

    from slc.testing import build_tiny_clip

    t = time.perf_counter()
    path = build_tiny_clip(tmp_path / "clip", seed=1)
    assert time.perf_counter() - t < 1.0
    model = AutoModel.from_pretrained(path)
    assert hasattr(model, "get_image_features")
    assert AutoImageProcessor.from_pretrained(path) is not None
    assert build_tiny_clip(tmp_path / "clip", seed=1) == path  # reused, not rebuilt


def test_image_embedder_shapes_normalization_batching(image_embedder):
    assert isinstance(image_embedder, ImageEmbedder)
    imgs = [noise_image(i) for i in range(9)]  # batch_size=4 -> 3 batches
    vecs = image_embedder.embed_images(imgs)
    assert vecs.dtype == np.float32 and vecs.shape == (9, image_embedder.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([image_embedder.embed_images([im]) for im in imgs])
    assert np.allclose(vecs, one_by_one, atol=1e-5)  # batching does not change results
    assert not np.allclose(vecs[0], vecs[1])
    assert image_embedder.embed_images([]).shape == (0, image_embedder.dim)


def test_text_embedder_is_offline_minilm(text_embedder):
    assert isinstance(text_embedder, TextEmbedder)
    assert (default_text_model_path() / "model.safetensors").is_file()
    vecs = text_embedder.embed_texts(["my golden retriever", "a yellow dog", "a stock market report"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2]  # a real sentence encoder: dogs are closer to dogs


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        HFImageEmbedder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        HFImageEmbedder(tmp_path / "empty")


def test_image_factory_has_no_default_and_says_how_to_set_one(tiny_clip_path, monkeypatch):
    """No random model on the runtime's path: without SLC_IMAGE_ENCODER the factory raises, naming the fix."""
    from slc.agent.settings import Settings

    monkeypatch.delenv("SLC_IMAGE_ENCODER", raising=False)
    s = Settings()
    with pytest.raises(ModelNotFoundError, match="SLC_IMAGE_ENCODER") as err:
        get_image_embedder(s)
    assert "slc demo" in str(err.value)
    assert not s.models_dir.exists()  # nothing was built
    configured = Settings(image_encoder=str(tiny_clip_path))
    emb = get_image_embedder(configured)
    assert get_image_embedder(configured) is emb  # cached per process
    assert get_text_embedder(s).dim == 384  # the text side keeps its real bundled default


def test_hf_text_embedder_matches_sentence_transformers(text_embedder):
    from slc.memory.embedders import HFTextEmbedder

    texts = ["my golden retriever <bo>", "a blue ceramic mug on a desk"]
    hf = HFTextEmbedder()
    assert hf.dim == text_embedder.dim
    assert np.allclose(hf.embed_texts(texts), text_embedder.embed_texts(texts), atol=1e-4)


def test_small_vlm_vision_tower_as_image_encoder(tiny_vlm_path):
    """A VLM checkpoint works too: get_image_features patch states, mean-pooled, one row per image."""
    emb = HFImageEmbedder(tiny_vlm_path("idefics3"))
    vecs = emb.embed_images([noise_image(i, (80, 60)) for i in range(3)])
    assert vecs.shape == (3, emb.dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])
