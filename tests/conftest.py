"""Suite-wide settings and the shared tiny-model fixtures.

Why here: every area's tests build the same tiny checkpoints; building each once per session keeps the
suite fast on 2 cores. Nothing here reaches the network: the hub is switched off, and LangSmith tracing
and Chroma telemetry are disabled unless a test turns them on against its own loopback server.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Generation in two processes sharing 2 cores slowed torch up to 40x: pin the thread count.
_THREADS = int(os.environ.get("SLC_TEST_TORCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own data dir, so no test reads ~/.slc or another test's memory."""
    data_dir = tmp_path_factory.mktemp("slc-data")
    monkeypatch.setenv("SLC_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SLC_CONFIG", raising=False)
    from slc.agent.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_vlm_path(tiny_models_dir: Path):
    """Factory: ``tiny_vlm_path("idefics3")`` -> folder of a saved tiny checkpoint, built once per session."""
    from slc.testing import build_tiny_vlm

    cache: dict[str, Path] = {}

    def get(family: str = "idefics3") -> Path:
        if family not in cache:
            cache[family] = build_tiny_vlm(family, tiny_models_dir / family, seed=0)
        return cache[family]

    return get


@pytest.fixture(scope="session")
def tiny_clip_path(tiny_models_dir: Path) -> Path:
    """A saved tiny CLIP vision encoder with projection (for memory and the CaT filter)."""
    from slc.testing import build_tiny_clip

    return build_tiny_clip(tiny_models_dir / "clip", seed=0)
