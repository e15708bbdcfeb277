"""Which layers a personalization LoRA adapts: the language model's projections, never the vision tower's.

Why a function: vision towers reuse the language model's leaf names (SigLIP's ``q_proj``), so a bare
``target_modules=["q_proj", "v_proj"]`` would adapt the vision tower as well. Training (a bank's adapters)
and anyone building adapters for the runtime take the targets from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from slc.agent.errors import UnsupportedModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def language_model_lora_targets(model: PreTrainedModel, leaves: Sequence[str] = DEFAULT_LORA_LEAVES) -> list[str]:
    """Full names of the language model's Linear layers whose last name part is in ``leaves``.

    The language model is found with ``get_decoder()``, which every image-text-to-text class provides,
    so this works for any family. Pass the result as ``LoraConfig(target_modules=...)``.
    """
    import torch

    decoder = model.get_decoder()
    prefix = next((name for name, module in model.named_modules() if module is decoder), None)
    if prefix is None:
        raise UnsupportedModelError(f"{type(model).__name__} does not expose its language model via get_decoder()")
    wanted = set(leaves)
    targets = [
        f"{prefix}.{name}" if prefix else name
        for name, module in decoder.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in wanted
    ]
    if not targets:
        raise UnsupportedModelError(f"No Linear layers named {sorted(wanted)} in {type(decoder).__name__}")
    return targets


__all__ = ["DEFAULT_LORA_LEAVES", "language_model_lora_targets"]
