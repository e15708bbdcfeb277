"""Fixtures of the product / reliability suite.

Real everything: the `slc` CLI (typer CliRunner, or a subprocess where a process must die), the real
ConceptMemory on embedded Chroma (tiny random CLIP + MiniLM), the real SmallVLM on a tiny Idefics3,
`transformers serve` for the happy path. The one stand-in is ``ControlServer`` (slc.testing.loopback): a tiny
OpenAI-compatible HTTP server on loopback that WE control, so faults (HTTP 500, a hang past the timeout, a
reply that obeys a prompt injection) can be injected at a chosen turn; it is used only for fault injection.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from slc.agent.processes import free_port
from slc.testing.loopback import ControlServer


@pytest.fixture
def control_server():
    from slc.testing.protocol_vlm import PROTOCOL_REPLY

    srv = ControlServer(PROTOCOL_REPLY)
    yield srv
    srv.close()


def world_images(n_concepts: int = 2) -> dict[str, Any]:
    from slc.cat.render import render
    from slc.cat.world import make_world

    world = make_world(n_concepts, seed=0)
    return {wc.name: (wc, [render(wc.tree, {"position": p}, size=64, seed=i) for i, p in enumerate(("center", "top left"))])
            for wc in world}


@pytest.fixture(scope="session")
def product_models(tiny_vlm_path, tiny_clip_path):
    """Paths of the tiny small VLM, tiny CLIP and the demo's protocol model (built once per session)."""
    from slc.testing.protocol_vlm import build_protocol_vlm

    proto = build_protocol_vlm(tiny_clip_path.parent / "protocol-vlm")
    return SimpleNamespace(small=tiny_vlm_path("idefics3"), clip=tiny_clip_path, protocol=proto)


@pytest.fixture
def env(product_models, monkeypatch, tmp_path):
    """SLC_* env for CLI runs in this test's data dir: tiny small VLM + tiny CLIP; returns helpers."""
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_SMALL__MODEL", str(product_models.small))
    monkeypatch.setenv("SLC_SMALL__MAX_NEW_TOKENS", "16")
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(product_models.clip))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    photo = tmp_path / "photo.png"
    imgs = world_images(2)
    imgs["c000"][1][1].save(photo)
    return SimpleNamespace(models=product_models, photo=photo, images=imgs, tmp=tmp_path)


@pytest.fixture
def memory_with_concepts(env):
    """The real memory of this test's data dir, holding c000 and c001 (concept-world renders)."""
    from slc.agent.settings import get_settings
    from slc.memory.store import ConceptMemory

    mem = ConceptMemory(get_settings())
    for name, (wc, refs) in env.images.items():
        mem.add(name, refs, description=wc.description, category=wc.tree.root)
    return mem


def noise(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture
def run_cli():
    """``run_cli(*args, input=None)`` -> typer Result of the real `slc` app (stderr kept separately)."""
    from typer.testing import CliRunner

    from slc.cli.app import app

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(app, list(args), input=input)

    return run


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(noise=noise, free_port=free_port, world_images=world_images, Path=Path)


@pytest.fixture
def control_env(env, control_server, monkeypatch):
    """The env with the large role at the test's control server: one attempt, 1 s timeout."""
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_LARGE__BASE_URL", control_server.url)
    monkeypatch.setenv("SLC_LARGE__MODEL", "control")
    monkeypatch.setenv("SLC_LARGE__MAX_RETRIES", "0")
    monkeypatch.setenv("SLC_LARGE__TIMEOUT_S", "1")
    get_settings.cache_clear()
    return env
