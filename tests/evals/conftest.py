"""Shared fixtures of the evals tests: the real annotation files, a synthetic image tree, a counting fake model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image

BENCHMARKS_DIR = Path(os.environ.get("SLC_BENCHMARKS_DIR", Path(__file__).resolve().parents[3] / "shared" / "benchmarks"))
if not BENCHMARKS_DIR.is_dir():
    BENCHMARKS_DIR = Path("/work/shared/benchmarks")


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    if not (BENCHMARKS_DIR / "rap" / "recognition_test.json").is_file():
        pytest.skip(f"real benchmark annotation files not found at {BENCHMARKS_DIR} (set SLC_BENCHMARKS_DIR)")
    return BENCHMARKS_DIR


def real_paths(bench_dir: Path, contains: str, n: int) -> list[str]:
    """The first ``n`` paths of Yo'LLaVA's file-list.txt that contain ``contains`` (the real layout)."""
    lines = (bench_dir / "yollava" / "file-list.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if contains in ln][:n]


def make_tree(root: Path, rel_paths: list[str]) -> Path:
    """Tiny PNGs at the given relative paths under ``root``."""
    for i, rel in enumerate(rel_paths):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 40 % 255, 100, 200)).save(p)
    return root


class CountingChatModel(BaseChatModel):
    """TEST DOUBLE (a LangChain fake chat model): replies from a fixed rule and counts real calls.

    Used only to show the runner's cache and usage accounting; it never sees pixels. ``reply_for`` maps
    the last user text to a reply; each reply carries usage metadata (10 in, 2 out) like a real provider.
    """

    calls: int = 0
    answer: str = "A"

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"answer": self.answer}

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        type(self).calls += 1
        msg = AIMessage(content=self.answer,
                        usage_metadata={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12})
        return ChatResult(generations=[ChatGeneration(message=msg)])


@pytest.fixture()
def counting_model() -> CountingChatModel:
    CountingChatModel.calls = 0
    return CountingChatModel()


@pytest.fixture()
def no_global_cache():
    from slc.evals.predictors import disable_llm_cache

    disable_llm_cache()
    yield
    disable_llm_cache()


@pytest.fixture()
def yollava_paths(bench_dir: Path):
    """``yollava_paths("test/bo/", 3)`` -> real relative paths from file-list.txt."""
    return lambda contains, n: real_paths(bench_dir, contains, n)


@pytest.fixture()
def image_tree():
    """``image_tree(root, rel_paths)`` writes tiny PNGs at those paths."""
    return make_tree
