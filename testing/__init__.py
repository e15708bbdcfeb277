"""slc.testing: tiny, randomly initialized, fully offline models for tests (ours and users').

Why: there is no model hub on CI machines, yet every code path must run on real transformers models.
These builders make checkpoints of the real architectures in well under a second, saved to a folder
that loads back through the same Auto classes users use with real checkpoints.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_tiny_vlm", "build_tiny_clip", "build_random_adapter_bank", "TINY_VLM_FAMILIES"]


def __getattr__(name: str) -> Any:  # lazy: importing slc.testing must not import torch
    if name in ("build_tiny_vlm", "TINY_VLM_FAMILIES"):
        from slc.testing import tiny_vlms

        return getattr(tiny_vlms, name)
    if name == "build_tiny_clip":
        from slc.testing import tiny_encoders

        return tiny_encoders.build_tiny_clip
    if name == "build_random_adapter_bank":
        from slc.testing import tiny_banks

        return tiny_banks.build_random_adapter_bank
    raise AttributeError(f"module 'slc.testing' has no attribute {name!r}")
