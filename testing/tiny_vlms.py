"""Tiny, randomly initialized image-text-to-text checkpoints of real architectures, for offline tests.

Why a wrapper: the builder is a training concern (meta-training starts from such a model, see
:mod:`slc.training.scratch`); tests, benchmarks and the demo ask for the same checkpoints by their testing
name. Same family, seed and options: byte-identical folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from slc.training.scratch import SCRATCH_VLM_FAMILIES as TINY_VLM_FAMILIES
from slc.training.scratch import build_scratch_vlm


def build_tiny_vlm(family: str, out_dir: str | os.PathLike[str], seed: int = 0, **overrides: object) -> Path:
    """Build (or reuse) a tiny random checkpoint of ``family`` in ``out_dir`` and return the folder
    (:func:`slc.training.scratch.build_scratch_vlm` with its tiny default sizes; ``overrides`` change them)."""
    return build_scratch_vlm(family, out_dir, seed, **overrides)


__all__ = ["TINY_VLM_FAMILIES", "build_tiny_vlm"]
