"""Fixtures of the privacy suite: every entry point, real components, captured at the wire.

Real everything except the large VLM's replies: the `slc` CLI (typer CliRunner, or subprocesses where
processes must race), the real ConceptMemory on embedded Chroma (tiny random CLIP + MiniLM), the real
SmallVLM on a tiny Idefics3, SQLite sessions. The large VLM is ``ControlServer``
(slc.testing.loopback), a loopback OpenAI-compatible endpoint that records every request, so a test can
see which chat history and which photo a request carried. LangSmith is ``LangSmithCapture``, a loopback
stand-in for the LangSmith API that keeps everything the real ``langsmith`` client posts.
"""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slc.testing.loopback import ControlServer, LangSmithCapture


def world_images(n_concepts: int = 2) -> dict[str, Any]:
    from slc.cat.render import render
    from slc.cat.world import make_world

    world = make_world(n_concepts, seed=0)
    return {wc.name: (wc, [render(wc.tree, {"position": p}, size=64, seed=i) for i, p in enumerate(("center", "top left"))])
            for wc in world}


def reset_services() -> None:
    """Forget the process-wide settings and service factory (the module-level graph runs on them)."""
    from slc.agent.settings import get_settings
    from slc.graphs.services import default_services

    get_settings.cache_clear()
    default_services.cache_clear()


@pytest.fixture
def control_server():
    from slc.testing.protocol_vlm import PROTOCOL_REPLY

    srv = ControlServer(PROTOCOL_REPLY)
    yield srv
    srv.close()


@pytest.fixture
def env(tiny_vlm_path, tiny_clip_path, control_server, monkeypatch, tmp_path):
    """SLC_* env of this test's data dir: tiny small VLM, tiny CLIP, the large VLM at ``control_server``.

    ``photos/`` holds the user's photos (an allowed root for tools and server use); ``outside/`` holds a
    photo that is not under any allowed root.
    """
    monkeypatch.setenv("SLC_SMALL__MODEL", str(tiny_vlm_path("idefics3")))
    monkeypatch.setenv("SLC_SMALL__MAX_NEW_TOKENS", "16")
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    monkeypatch.setenv("SLC_LARGE__BASE_URL", control_server.url)
    monkeypatch.setenv("SLC_LARGE__MODEL", "control")
    monkeypatch.setenv("SLC_LARGE__MAX_RETRIES", "0")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    photos = tmp_path / "photos"
    photos.mkdir()
    monkeypatch.setenv("SLC_PRIVACY__PHOTO_ROOTS", f'["{photos}"]')
    imgs = world_images(2)
    photo = photos / "photo.png"
    imgs["c000"][1][1].save(photo)
    outside = tmp_path / "outside"
    outside.mkdir()
    elsewhere = outside / "elsewhere.png"
    imgs["c001"][1][1].save(elsewhere)
    reset_services()
    from slc.agent.settings import get_settings

    yield SimpleNamespace(photo=photo, photos=photos, elsewhere=elsewhere, images=imgs, tmp=tmp_path,
                          data_dir=get_settings().data_dir, large=control_server)
    reset_services()


@pytest.fixture
def concepts(env):
    """Tenant "a" holds c000 and c001 (concept-world renders) in the real memory of this test's data dir."""
    from slc.agent.settings import get_settings
    from slc.memory.store import ConceptMemory

    with ConceptMemory(get_settings(), tenant="a") as mem:
        for name, (wc, refs) in env.images.items():
            mem.add(name, refs, description=wc.description, category=wc.tree.root)
        return {c.name: c for c in mem.list()}


@pytest.fixture
def run_cli():
    """``run_cli(*args, input=None)`` -> typer Result of the real `slc` app."""
    from typer.testing import CliRunner

    from slc.cli.app import app

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(app, list(args), input=input)

    return run


@pytest.fixture
def langsmith(monkeypatch):
    """LangSmith tracing on, into a loopback capture (the LANGSMITH_* variables a user would set)."""
    from langsmith import run_trees
    from langsmith import utils as ls_utils

    from slc.graphs import tracing

    capture = LangSmithCapture()
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "true")  # the root conftest set it false; langsmith reads both
    monkeypatch.setenv("LANGSMITH_ENDPOINT", capture.base)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_PROJECT", "slc-privacy")
    # langsmith caches env lookups and its default client (created with the endpoint of its first use)
    ls_utils.get_env_var.cache_clear()
    monkeypatch.setattr(run_trees, "_CLIENT", None)
    tracing.reset_clients()
    yield capture
    flush_traces()
    tracing.reset_clients()
    monkeypatch.undo()
    ls_utils.get_env_var.cache_clear()
    capture.close()


def flush_traces() -> None:
    """Send everything the project's clients and LangChain's default client still hold."""
    from langchain_core.tracers.langchain import wait_for_all_tracers

    from slc.graphs import tracing

    tracing.reset_clients()
    wait_for_all_tracers()


def sent_photo_b64(large: ControlServer) -> list[str]:
    """The base64 payloads of every image the large VLM received (what a leak would contain)."""
    out = []
    for req in large.requests:
        for msg in req.get("messages", []):
            content = msg.get("content")
            for part in content if isinstance(content, list) else []:
                url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
                if url.startswith("data:"):
                    out.append(url.split(",", 1)[1])
    return out


def file_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(flush_traces=flush_traces, sent_photo_b64=sent_photo_b64, file_b64=file_b64,
                           reset_services=reset_services)
