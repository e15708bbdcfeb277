"""A bank of random LoRA adapters on a tiny checkpoint, for tests of routing and adapter switching.

Why random but non-zero: peft initialises LoRA B to zero, which would make every adapter a no-op and
every routing test unable to fail; ``init_lora_weights=False`` gives adapters that really move the logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from slc.agent.adapters import AdapterBank


def build_random_adapter_bank(
    model_path: str | Path,
    root: str | Path,
    centroids: np.ndarray,
    *,
    seed: int = 0,
    embedder: str = "test-embedder",
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
) -> AdapterBank:
    """An :class:`~slc.agent.adapters.AdapterBank` in ``root`` with one adapter per centroid row: a0, a1, ..."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from slc.agent.adapters import AdapterBank

    base = AutoModelForImageTextToText.from_pretrained(model_path)
    bank = AdapterBank.create(root, base_model=str(model_path), embedder=embedder)
    peft_model = None
    for k, centroid in enumerate(np.asarray(centroids, dtype=np.float32)):
        cfg = LoraConfig(r=4, lora_alpha=16, target_modules=list(target_modules), init_lora_weights=False)
        torch.manual_seed(seed + k)
        if peft_model is None:
            peft_model = get_peft_model(base, cfg, adapter_name=f"a{k}")
        else:
            peft_model.add_adapter(f"a{k}", cfg)
        bank.add_adapter(f"a{k}", peft_model, centroid, adapter_name=f"a{k}", concepts=[f"cluster{k}"], metrics={"acc": 0.5})
    return bank
