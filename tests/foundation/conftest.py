"""Helpers shared by the foundation tests (pytest runs with --import-mode=importlib, so they live here)."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture
def red_square() -> Image.Image:
    return Image.new("RGB", (80, 60), (210, 40, 40))


@pytest.fixture
def blue_tall() -> Image.Image:
    return Image.new("RGB", (50, 100), (20, 40, 220))
