"""Shared helpers of the memory tests: distinct test images, real encoders (tiny CLIP, MiniLM), a memory.

The encoders are real transformers / sentence-transformers models: the tiny CLIP is randomly initialized
(its similarities are meaningless except that identical images score 1.0 and very different images score
lower), MiniLM is the real all-MiniLM-L6-v2 shipped offline.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def noise_image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A random RGB picture: different seeds give different images (and different digests)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def image_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write_image(path: Path, img: Image.Image, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def image_embedder(tiny_clip_path: Path):
    from slc.memory.embedders import HFImageEmbedder

    return HFImageEmbedder(tiny_clip_path, batch_size=4)


@pytest.fixture(scope="session")
def text_embedder():
    from slc.memory.embedders import SentenceTransformerTextEmbedder

    return SentenceTransformerTextEmbedder()


@pytest.fixture
def settings(tiny_clip_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    from slc.agent.settings import Settings

    return Settings()


@pytest.fixture
def memory(settings, image_embedder, text_embedder):
    from slc.memory.store import ConceptMemory

    return ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder)


def stored_files(settings) -> list[Path]:
    root = settings.images_dir
    return sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png")) if root.exists() else []
