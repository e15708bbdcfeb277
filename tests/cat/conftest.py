"""Helpers shared by the CaT tests (fixtures: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from slc.cat.world import PALETTE


def _nearest_palette(rgb) -> str:
    return min(PALETTE, key=lambda n: float(np.linalg.norm(np.array(PALETTE[n], float) - np.array(rgb, float))))


def _body_pixels(img: Image.Image) -> np.ndarray:
    """Saturated pixels (the object's body and its pattern ink; backgrounds/clutter/accessories are grey)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    mx, mn = a.max(axis=2), a.min(axis=2)
    mask = ((mx - mn) / np.maximum(mx, 1) > 0.35) & (mx > 50)
    return a[mask]


@pytest.fixture
def nearest_palette():
    """f(rgb) -> name of the nearest palette colour."""
    return _nearest_palette


@pytest.fixture
def body_pixels():
    """f(image) -> (n, 3) array of the object's body pixels."""
    return _body_pixels
