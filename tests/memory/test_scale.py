"""Memory at scale: exact in-process search, lookups that do not scan, copies that stay correct across
processes and bounded in memory, tenants sharing Chroma's collections without seeing each other.

Real Chroma (embedded), real tiny CLIP and MiniLM; the in-process index is checked against numpy brute force.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slc.agent.errors import UnknownConceptError
from slc.memory import exact_index
from slc.memory.backends import open_backend
from slc.memory.exact_index import ExactIndex
from slc.memory.index import Record
from slc.memory.store import ConceptMemory

from .conftest import noise_image


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_index_returns_the_brute_force_top_k_through_adds_updates_and_deletes():
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 500, 32)
    ix = ExactIndex("t", keys=("group",))
    ix.add([Record(f"r{i}", vecs[i], {"group": i % 7}) for i in range(500)])
    ix.delete([f"r{i}" for i in range(0, 500, 3)])  # holes filled by moving rows
    ix.update([Record("r1", -vecs[1], {"group": 99})])
    alive = {f"r{i}": (-vecs[i] if i == 1 else vecs[i]) for i in range(500) if i % 3}
    ids = list(alive)
    mat = np.stack([alive[i] for i in ids])
    for q in _unit(rng, 20, 32):
        sims = mat @ q
        want = [ids[j] for j in np.argsort(-sims)[:10]]
        got = ix.query(q, 10)
        assert [h.id for h in got] == want
        assert np.allclose([h.similarity for h in got], np.sort(sims)[::-1][:10], atol=1e-6)
    assert ix.count() == len(alive)
    assert {r.id for r in ix.get(where={"group": 99})} == {"r1"}
    assert {r.id for r in ix.get(where={"group": [2, 99]})} == {i for i in ids if int(i[1:]) % 7 == 2} | {"r1"}
    assert ix.get(where={"group": []}) == []
    assert np.allclose(ix.get(["r1"], vectors=True)[0].vector, -vecs[1])


def test_exact_index_lookup_on_a_keyed_field_checks_only_the_matches(monkeypatch):
    """A name lookup must not visit every record: with 20,000 records, only the rows named are checked."""
    ix = ExactIndex("t", keys=("name_lower",))
    ix.add([Record(f"id{i}", None, {"name_lower": f"c{i}", "description": "x"}) for i in range(20_000)])
    checked = []
    real = exact_index._matches
    monkeypatch.setattr(exact_index, "_matches", lambda md, where: checked.append(md) or real(md, where))
    got = ix.get(where={"name_lower": ["c17", "c19999", "nobody"]})
    assert sorted(r.id for r in got) == ["id17", "id19999"]
    assert len(checked) == 2
    ix.get(where={"description": "x"}, limit=1)  # a field without a hash index is scanned (still correct)
    assert len(checked) == 2 + 20_000


def test_records_loaded_without_vectors_are_skipped_until_their_vectors_arrive():
    rng = np.random.default_rng(1)
    v = _unit(rng, 3, 8)
    ix = ExactIndex("t")
    ix.add([Record("a", None, {}), Record("b", v[1], {})])
    assert not ix.has_all_vectors
    assert [h.id for h in ix.query(v[0], 5)] == ["b"]
    ix.set_vectors([Record("a", v[0], {})])
    assert ix.has_all_vectors and ix.query(v[0], 1)[0].id == "a"


def _count_store_reads(memory: ConceptMemory, monkeypatch) -> list[str]:
    """Record every read the memory makes of Chroma (the durable store behind its in-process copies)."""
    reads: list[str] = []
    for index in (memory._concepts, memory._imgs):
        collection = getattr(index, "durable", index).collection
        for op in ("get", "query"):
            real = getattr(collection, op)
            monkeypatch.setattr(collection, op, lambda *a, _real=real, _op=op, **k: reads.append(_op) or _real(*a, **k))
    return reads


def test_name_lookups_and_image_queries_do_not_read_the_store_once_its_copy_is_loaded(memory, monkeypatch):
    bo = memory.add("bo", [noise_image(1)], description="my dog")
    memory.add("mam", [noise_image(2)], description="my cat")
    reads = _count_store_reads(memory, monkeypatch)
    for _ in range(20):
        assert [h.concept.name for h in memory.recall_by_text("is <bo> with mam?")] == ["bo", "mam"]
        assert memory.recall_by_image(noise_image(1), threshold=0.9999)[0].concept.id == bo.id
        assert memory.get("bo").id == bo.id
    assert reads == []


def test_a_write_by_another_process_is_seen_at_the_next_read(settings, image_embedder, text_embedder):
    """Two memories on separate backends (as two processes have): each sees the other's writes at once."""
    kw = dict(image_embedder=image_embedder, text_embedder=text_embedder)
    a, b = ConceptMemory(settings, **kw), ConceptMemory(settings, **kw)
    try:
        assert a.list() == [] and b.list() == []  # both copies loaded, empty
        bo = b.add("bo", [noise_image(1)], description="my dog")
        assert a.get("bo").id == bo.id
        assert a.recall_by_image(noise_image(1), threshold=0.9999)[0].concept.id == bo.id
        a.rename("bo", "bobo")
        assert [h.concept.name for h in b.recall_by_text("where is bobo")] == ["bobo"] and not b.exists("bo")
        b.delete("bobo")
        assert a.recall_by_image(noise_image(1), threshold=-1) == [] and len(a) == 0
    finally:
        a.close()
        b.close()


ADD_IN_CHILD = """
import sys
import numpy as np
from PIL import Image
from slc.memory.embedders import HFImageEmbedder, HFTextEmbedder
from slc.memory.store import ConceptMemory
img = Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB")
ConceptMemory(image_embedder=HFImageEmbedder(sys.argv[1]), text_embedder=HFTextEmbedder()).add("cat", [img])
"""


def test_a_photo_registered_by_another_process_is_recalled_by_image(settings, tiny_clip_path, image_embedder, text_embedder):
    """Embedded Chroma keeps a per-process vector index that only takes in other processes' records when
    the process writes; a server memory opened before `slc concept add` ran elsewhere must still find it."""
    mem = ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder)
    mem.add("dog", [noise_image(1)])
    assert [h.concept.name for h in mem.recall_by_image(noise_image(1), threshold=0.9999)] == ["dog"]
    subprocess.run([sys.executable, "-c", ADD_IN_CHILD, str(tiny_clip_path)], check=True, timeout=180,
                   env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    from PIL import Image

    cat = Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB")
    assert [h.concept.name for h in mem.recall_by_image(cat, threshold=0.9999)] == ["cat"]
    assert sorted(c.name for c in mem.list()) == ["cat", "dog"]


def test_many_tenants_on_one_backend_stay_isolated_and_bounded(settings, image_embedder, text_embedder):
    """Forty tenants on one backend whose cache holds only a few of them: every tenant still gets its own
    concepts (same names, same photo in every tenant), and the copies held stay within the cap."""
    backend = open_backend(settings)
    backend.cache_bytes = 40_000  # a few tenants' copies
    try:
        kw = dict(image_embedder=image_embedder, text_embedder=text_embedder, backend=backend)
        photo = noise_image(5)
        vec = image_embedder.embed_images([photo])[0]
        tenants = [f"tenant-{i}" for i in range(40)]
        for t in tenants:
            ConceptMemory(settings, tenant=t, **kw).add("bo", [photo], description=f"bo of {t}")
        for t in reversed(tenants):
            mem = ConceptMemory(settings, tenant=t, **kw)
            hits = mem.recall_by_embedding(vec, threshold=-1)
            assert [(h.concept.tenant, h.concept.description) for h in hits] == [(t, f"bo of {t}")]
            assert [h.concept.description for h in mem.recall_by_text("<bo>")] == [f"bo of {t}"]
            newest = backend._copies[next(reversed(backend._copies))]
            assert backend.cached_bytes <= backend.cache_bytes + newest.size
        assert len(backend._copies) < 2 * len(tenants)
    finally:
        backend.close()


def test_a_tenant_view_cannot_name_another_tenants_records(settings, image_embedder, text_embedder):
    """Tenants share Chroma's two collections: a tenant's view prefixes every id and filters every read, so
    even an explicit record id of another tenant reads, updates and deletes nothing."""
    backend = open_backend(settings)
    try:
        kw = dict(image_embedder=image_embedder, text_embedder=text_embedder, backend=backend)
        alice, bob = ConceptMemory(settings, tenant="alice", **kw), ConceptMemory(settings, tenant="bob", **kw)
        secret = bob.add("diary", [noise_image(3)], description="bob's secret")
        view = backend.durable.open_index(alice.key, "concepts")
        assert view.get([secret.id]) == [] and view.count() == 0
        view.delete([secret.id])
        view.update([Record(secret.id, None, {"description": "defaced"})])
        with pytest.raises(UnknownConceptError):
            alice.get(secret.id)
        backend.forget(bob.key)  # reread bob from Chroma itself
        assert bob.get("diary").description == "bob's secret"
        raw = backend.durable.open_index(bob.key, "concepts").collection.get(include=["metadatas"])
        assert all(rid.startswith(f"{md['slc_tenant']}/") for rid, md in zip(raw["ids"], raw["metadatas"]))
    finally:
        backend.close()
