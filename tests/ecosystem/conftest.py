"""Fixtures of the ecosystem suite: slc driven by the ecosystem's own clients and test suites.

Real everything: the real ConceptMemory on embedded Chroma (tiny random CLIP + MiniLM), the real SmallVLM
on a tiny Idefics3, the demo's protocol model (a real checkpoint that always gives one protocol reply) as
the in-process chat model, SQLite or a real Postgres for sessions. Where the large VLM is an endpoint it is
``ControlServer`` (slc.testing.loopback), a loopback OpenAI-compatible server we control, answering the
protocol reply and recording what it was sent.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slc.testing.loopback import ControlServer


def world_images(n_concepts: int = 2) -> dict[str, Any]:
    """Concept-world renders: {name: (world concept, [two reference images])}."""
    from slc.cat.render import render
    from slc.cat.world import make_world

    world = make_world(n_concepts, seed=0)
    return {wc.name: (wc, [render(wc.tree, {"position": p}, size=64, seed=i) for i, p in enumerate(("center", "top left"))])
            for wc in world}


@pytest.fixture(scope="session")
def protocol_vlm_path(tiny_clip_path) -> Path:
    """The demo's protocol model (built once per session, beside the other tiny models)."""
    from slc.testing.protocol_vlm import build_protocol_vlm

    return build_protocol_vlm(tiny_clip_path.parent / "protocol-vlm")


@pytest.fixture(scope="module")
def control_server():
    from slc.testing.protocol_vlm import PROTOCOL_REPLY

    srv = ControlServer(PROTOCOL_REPLY)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def real(tiny_vlm_path, tiny_clip_path, control_server, tmp_path_factory):
    """One tenant's real services for a module: settings, a ServiceFactory, a photo of <c000> under the allowed
    root, and concepts c000/c001 registered. Its settings are explicit, so no test's environment changes them."""
    from slc.agent.settings import Settings
    from slc.graphs.services import ServiceFactory

    root = tmp_path_factory.mktemp("ecosystem")
    photos = root / "photos"
    photos.mkdir()
    settings = Settings(
        data_dir=root / "data", tenant="a", image_encoder=str(tiny_clip_path),
        small={"model": str(tiny_vlm_path("idefics3")), "max_new_tokens": 16},
        large={"model": "control", "base_url": control_server.url, "max_retries": 0},
        privacy={"photo_roots": [photos]},
    )
    services = ServiceFactory(settings)
    images = world_images(2)
    photo = photos / "photo.png"
    images["c000"][1][1].save(photo)
    memory = services.memory()
    for name, (wc, refs) in images.items():
        memory.add(name, refs, description=wc.description, category=wc.tree.root)
    yield SimpleNamespace(settings=settings, services=services, photo=photo, images=images, large=control_server)
    services.close()
