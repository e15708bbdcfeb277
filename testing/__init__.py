"""slc.testing: tiny, randomly initialized, fully offline models for tests (ours and users').

Why: there is no model hub on CI machines, yet every code path must run on real transformers models.
These builders make checkpoints of the real architectures in well under a second, saved to a folder
that loads back through the same Auto classes users use with real checkpoints.
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

_EXPORTS = {
    "build_tiny_vlm": "slc.testing.tiny_vlms",
    "TINY_VLM_FAMILIES": "slc.testing.tiny_vlms",
    "build_tiny_clip": "slc.testing.tiny_encoders",
    "build_random_adapter_bank": "slc.testing.tiny_banks",
    "build_protocol_vlm": "slc.testing.protocol_vlm",
    "PROTOCOL_REPLY": "slc.testing.protocol_vlm",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)  # importing slc.testing must not import torch
