"""Chroma reads of a whole index go a page at a time (a single get of a tenant's 100k records failed with
"too many SQL variables" when the in-process copy loaded it): every record comes back, once, across pages,
and other tenants' records never. The page size is made tiny here; the 100k case is benchmarks/memory_query.py."""

from __future__ import annotations

import numpy as np

from slc.agent.settings import Settings
from slc.memory import chroma_index
from slc.memory.chroma_index import ChromaBackend
from slc.memory.index import Record


def test_whole_index_reads_page_through_every_record(tmp_path, monkeypatch):
    monkeypatch.setattr(chroma_index, "_GET_PAGE", 3)
    backend = ChromaBackend(Settings(data_dir=tmp_path))
    try:
        mine, theirs = backend.open_index("alice", "images"), backend.open_index("bob", "images")
        vec = lambda i: np.eye(8, dtype=np.float32)[i % 8]  # noqa: E731
        mine.add([Record(f"a{i}", vec(i), {"n": i}) for i in range(10)])
        theirs.add([Record(f"b{i}", vec(i), {"n": i}) for i in range(4)])
        got = mine.get(vectors=True)
        assert sorted(r.id for r in got) == sorted(f"a{i}" for i in range(10))
        assert all(r.vector is not None and r.vector.shape == (8,) for r in got)
        assert mine.count() == 10 and theirs.count() == 4
        assert len(mine.get(limit=4)) == 4
        assert sorted(r.id for r in mine.get([f"a{i}" for i in range(10)] + ["b1"])) == sorted(f"a{i}" for i in range(10))
    finally:
        backend.close()
