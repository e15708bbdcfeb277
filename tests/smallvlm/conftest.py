"""Shared helpers of the small-VLM tests: photos, a bank of random LoRA adapters, forced replies.

Everything here runs the REAL tiny transformers models. The two stand-ins are declared as such:
:class:`ForceReplies` only overrides which token generation picks (the model still runs every forward
pass) so a test can make the reply malformed on purpose, and :class:`FakeToolCallingModel` is a LangChain
fake chat model (a test double for the large agent model, not for anything of ours).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from PIL import Image
from transformers import LogitsProcessor

from slc.testing.tiny_banks import build_random_adapter_bank

FAMILIES = ("idefics3", "qwen2_5_vl")
BANK_DIM = 8


def photo(color: tuple[int, int, int], size: tuple[int, int] = (80, 64)) -> Image.Image:
    """A small RGB photo with a coloured square, so images differ in content."""
    img = Image.new("RGB", size, (240, 240, 240))
    img.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), color), (size[0] // 4, size[1] // 4))
    return img


@pytest.fixture(scope="session")
def photos() -> list[Image.Image]:
    return [photo(c) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30))]


@pytest.fixture(scope="session")
def bank_for(tiny_vlm_path, tmp_path_factory):
    """Factory: ``bank_for(family)`` -> a 3-adapter bank with one-hot centroids e0, e1, e2 (built once)."""
    cache: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in cache:
            cache[family] = build_random_adapter_bank(tiny_vlm_path(family), tmp_path_factory.mktemp(f"bank-{family}"), np.eye(3, BANK_DIM))
        return cache[family]

    return get


class ForceReplies(LogitsProcessor):
    """Forces generation to spell ``replies[k]`` on the k-th ``generate`` call (the last one repeats).

    Test double for the model's token CHOICE only: the real model still computes every step; this sets
    all scores but the forced token to -inf. A new call is recognized because its ids do not extend the
    previous step's ids.
    """

    def __init__(self, tokenizer: Any, replies: list[str]) -> None:
        self.eos = tokenizer.eos_token_id
        self.seqs = [tokenizer.encode(r, add_special_tokens=False) + [self.eos] for r in replies]
        self.calls = 0
        self._prev: torch.Tensor | None = None
        self._start = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prev = self._prev
        continuing = prev is not None and input_ids.shape[1] == prev.shape[1] + 1 and torch.equal(input_ids[:, :-1], prev)
        if not continuing:
            self.calls += 1
            self._start = input_ids.shape[1]
        self._prev = input_ids.clone()
        seq = self.seqs[min(self.calls, len(self.seqs)) - 1]
        step = input_ids.shape[1] - self._start
        forced = seq[step] if step < len(seq) else self.eos
        out = torch.full_like(scores, float("-inf"))
        out[:, forced] = 0.0
        return out


class FakeToolCallingModel(GenericFakeChatModel):
    """Test double for the agent's chat model: replays scripted AIMessages (tool calls, then an answer).

    GenericFakeChatModel has no ``bind_tools``; create_agent needs one, so it records the bound tools.
    """

    bound_tools: list[Any] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> "FakeToolCallingModel":
        self.bound_tools = list(tools)
        return self
