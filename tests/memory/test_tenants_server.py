"""Tenant isolation (embedded) and the same API against a real `chroma run` server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from slc.agent.errors import MemoryUnavailableError, UnknownConceptError
from slc.agent.processes import free_port
from slc.memory.store import ConceptMemory

from .conftest import noise_image


def _pair(settings, image_embedder, text_embedder, a="alice", b="Alice/../bob", client=None):
    kw = dict(image_embedder=image_embedder, text_embedder=text_embedder, client=client)
    return ConceptMemory(settings, tenant=a, **kw), ConceptMemory(settings, tenant=b, **kw)


def _check_isolation(alice: ConceptMemory, bob: ConceptMemory) -> None:
    shared_pixels = noise_image(1)
    alice.add("bo", [shared_pixels], description="alice's dog")
    bob.add("mam", [noise_image(2)], description="bob's cat")
    bob.add("bo", [shared_pixels], description="bob's own bo")  # same name and picture: separate concept
    assert [c.name for c in alice.list()] == ["bo"]
    assert [c.name for c in bob.list()] == ["bo", "mam"]
    assert alice.get("bo").description == "alice's dog" and bob.get("bo").description == "bob's own bo"
    assert [h.concept.name for h in alice.recall_by_text("is <mam> or <bo> here")] == ["bo"]
    assert alice.recall_by_image(noise_image(2), threshold=0.9999) == []
    assert [h.concept.tenant for h in alice.recall_by_image(shared_pixels, threshold=-1)] == ["alice"]
    assert all(h.concept.tenant == bob.tenant for h in bob.recall(text="bo mam", image=shared_pixels, hybrid=True))
    with pytest.raises(UnknownConceptError):
        alice.get("mam")
    with pytest.raises(UnknownConceptError):
        alice.get(bob.get("mam").id)  # ids do not leak across tenants either
    alice.delete("bo")
    assert Path(bob.get("bo").images[0].path).is_file()  # alice's delete never touches bob's files
    assert alice.list() == [] and len(bob.list()) == 2


def test_tenants_are_isolated_embedded(settings, image_embedder, text_embedder):
    alice, bob = _pair(settings, image_embedder, text_embedder)
    _check_isolation(alice, bob)


@pytest.fixture
def chroma_server(tmp_path):
    from slc.agent.processes import chroma_server as serve

    with serve(tmp_path / "server-db") as url:
        yield url


@pytest.mark.integration
def test_server_mode_full_api_and_tenants(chroma_server, monkeypatch, image_embedder, text_embedder):
    monkeypatch.setenv("SLC_CHROMA__URL", chroma_server)
    from slc.agent.settings import Settings

    settings = Settings()
    alice, bob = _pair(settings, image_embedder, text_embedder)
    assert not settings.chroma_path.exists()  # nothing embedded was opened
    _check_isolation(alice, bob)
    c = bob.add_images("mam", [noise_image(3)])
    bob.rename("mam", "mimi")
    assert len(bob.get("mimi").images) == 2 and bob.recall_by_image(noise_image(3), threshold=0.9999)[0].concept.id == c.id
    # a second client (another process or host would do the same) sees the same data
    again = ConceptMemory(Settings(), tenant="Alice/../bob", image_embedder=image_embedder, text_embedder=text_embedder)
    assert sorted(x.name for x in again.list()) == ["bo", "mimi"]


def test_unreachable_server_is_a_clear_error(monkeypatch, image_embedder, text_embedder):
    monkeypatch.setenv("SLC_CHROMA__URL", f"http://127.0.0.1:{free_port()}")
    from slc.agent.settings import Settings

    with pytest.raises(MemoryUnavailableError, match="Cannot reach concept memory"):
        ConceptMemory(Settings(), image_embedder=image_embedder, text_embedder=text_embedder)


def test_tenants_share_one_backend_the_caller_owns(settings, image_embedder, text_embedder):
    """A process serving many tenants opens one store connection and gives it to every tenant's memory."""
    from slc.memory.backends import open_backend

    backend = open_backend(settings)
    try:
        kw = dict(image_embedder=image_embedder, text_embedder=text_embedder, backend=backend)
        alice, bob = ConceptMemory(settings, tenant="alice", **kw), ConceptMemory(settings, tenant="Alice/../bob", **kw)
        alice.close()  # a memory never closes a backend it was given: bob (and alice) keep working
        _check_isolation(alice, bob)
    finally:
        backend.close()
