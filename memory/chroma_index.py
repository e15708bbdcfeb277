"""The Chroma backend of concept memory: :class:`ChromaIndex` (one tenant's view) and :class:`ChromaBackend`.

Why this shape (measured, benchmarks/tenants.py; 512-d vectors, embedded Chroma 1.5, 2 cores):
- TWO collections shared by every tenant, ``<prefix>-concepts`` and ``<prefix>-images``; each record id is
  prefixed with its tenant key and its metadata names the tenant. One collection per tenant (what this
  backend did before) kept an HNSW index of ~2.6 MB per collection in the memory of whatever process hosts
  Chroma (5.2 GB for 2,000 tenants; Chroma's own cache of open indexes is sized by the open-file limit,
  in practice unbounded) and a query on a random tenant's collection took 44 ms against 2 ms on a warm one.
  Chroma's tenant/database model is the same thing underneath (collections per tenant). Shared collections
  cost memory in proportion to the records only.
- A view (:class:`ChromaIndex`) can only name its own tenant's records: every id it writes or reads is
  prefixed with the tenant key and every filter is ANDed with the tenant. So isolation does not depend on
  callers remembering a filter.
- Tenant-filtered similarity search in a shared collection is slow (124 ms at 100k records), and HNSW
  recall was poor on uniform vectors; :class:`ChromaIndex.query` is correct but concept memory queries the
  in-process mirror of :mod:`slc.memory.mirror` instead. Chroma is the durable, shared store of record: a
  tenant's records load from it by the tenant filter (11 ms at 100k records) or by id (1.1 ms).
- Vectors are always passed explicitly (``embedding_function=None``): Chroma's default embedding function
  would try to download a model. Cosine HNSW tuned from ``settings.chroma.hnsw_*``.
- Embedded mode (a folder): writers of every tenant serialize on one lock beside the folder, since they
  share its files. Server mode, or a client the caller opened: one lock per tenant under ``data_dir/locks``.
- One client serves every tenant. Closing it (only a client it made itself) matters in embedded mode:
  Chroma keeps a store open per process, so a memory re-created on a deleted and recreated folder would
  still see the old data.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

import numpy as np

from slc.agent.errors import MemoryUnavailableError
from slc.agent.settings import Settings
from slc.memory.index import Hit, IndexKind, Metadata, Record, Where
from slc.memory.names import slug

if TYPE_CHECKING:
    from chromadb.api import ClientAPI as ChromaClient
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Where as ChromaWhere

#: The metadata field naming a record's tenant (its tenant key).
TENANT_FIELD = "slc_tenant"
#: A record id never written, deleted to make embedded Chroma take in other processes' writes (see get).
_CATCH_UP_ID = "slc-catch-up"
_CATCH_UP_TRIES = 3
#: Records per Chroma get: a get of a whole 100k-record index failed with "too many SQL variables".
_GET_PAGE = 10_000


class _Page(NamedTuple):
    records: list[Record]
    n: int  # rows Chroma returned (before the tenant check)


def _chroma_where(where: Where) -> "ChromaWhere | None":
    """Chroma's filter for ``where``; None when an empty membership list means nothing can match."""
    clauses: list[ChromaWhere] = []
    for key, value in where.items():
        if isinstance(value, (str, int, float, bool)):
            clauses.append({key: value})
        elif not value:
            return None
        else:
            clauses.append({key: {"$in": list(value)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _vectors(records: Sequence[Record]) -> list[np.ndarray]:
    return [np.asarray(r.vector, dtype=np.float32) for r in records]


class ChromaIndex:
    """:class:`~slc.memory.index.VectorIndex` of ONE tenant on a collection all tenants share (cosine)."""

    def __init__(self, collection: "Collection", tenant_key: str) -> None:
        self.collection = collection
        self.tenant_key = tenant_key
        self.name: str = f"{collection.name}/{tenant_key}"
        self._prefix = f"{tenant_key}/"

    def _id(self, rid: str) -> str:
        return self._prefix + rid

    def _ids(self, ids: Sequence[str]) -> list[str]:
        return [self._prefix + i for i in ids]

    def _own(self, rid: str) -> str:
        return rid[len(self._prefix):]

    def _where(self, where: Where | None) -> "ChromaWhere | None":
        return _chroma_where({TENANT_FIELD: self.tenant_key, **(where or {})})

    def _metadatas(self, records: Sequence[Record], *, new: bool) -> list[Metadata] | None:
        if new:
            return [{**r.metadata, TENANT_FIELD: self.tenant_key} for r in records]
        return [dict(r.metadata) for r in records] if any(r.metadata for r in records) else None

    def add(self, records: Sequence[Record]) -> None:
        if records:
            self.collection.add(ids=self._ids([r.id for r in records]), embeddings=_vectors(records),
                                metadatas=self._metadatas(records, new=True))  # type: ignore[arg-type]

    def update(self, records: Sequence[Record]) -> None:
        with_vec = [r for r in records if r.vector is not None]
        without = [r for r in records if r.vector is None]
        if with_vec:
            self.collection.update(ids=self._ids([r.id for r in with_vec]), embeddings=_vectors(with_vec),
                                   metadatas=self._metadatas(with_vec, new=False))  # type: ignore[arg-type]
        if without:
            self.collection.update(ids=self._ids([r.id for r in without]),
                                   metadatas=self._metadatas(without, new=False))  # type: ignore[arg-type]

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.collection.delete(ids=self._ids(ids))

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        limit: int | None = None,
        vectors: bool = False,
        metadata: bool = True,
    ) -> list[Record]:
        if ids is not None and not ids:
            return []
        chroma_where = self._where(where)
        if chroma_where is None:
            return []
        if ids is not None and len(ids) > _GET_PAGE:  # Chroma binds every id as one SQL variable
            out = [r for s in range(0, len(ids), _GET_PAGE)
                   for r in self.get(ids[s:s + _GET_PAGE], where=where, vectors=vectors, metadata=metadata)]
            return out[:limit] if limit is not None else out
        if ids is None and (limit is None or limit > _GET_PAGE):  # a whole index, a page at a time: one get
            out, offset = [], 0  # of a tenant's 100k records failed with "too many SQL variables"
            while limit is None or len(out) < limit:
                page = self._get_page(None, chroma_where, _GET_PAGE, offset, vectors, metadata)
                out += page.records
                if page.n < _GET_PAGE:
                    break
                offset += _GET_PAGE
            return out[:limit] if limit is not None else out
        return self._get_page(ids, chroma_where, limit, None, vectors, metadata).records

    def _get_page(self, ids: Sequence[str] | None, chroma_where: Any, limit: int | None, offset: int | None,
                  vectors: bool, metadata: bool) -> _Page:
        include = (["embeddings"] if vectors else []) + ["metadatas"]  # metadata: the tenant check below
        kw = dict(ids=self._ids(ids) if ids is not None else None, where=chroma_where, limit=limit, offset=offset,
                  include=include)
        for attempt in range(_CATCH_UP_TRIES + 1):
            try:
                got = self.collection.get(**kw)  # type: ignore[arg-type]
                break
            except Exception as exc:  # noqa: BLE001 - chromadb.errors.InternalError, checked by name below
                if not vectors or attempt == _CATCH_UP_TRIES or type(exc).__name__ != "InternalError":
                    raise
                # Embedded Chroma shared by processes: this process's vector index only takes in another
                # process's records when this process writes ("Error finding id" until then); a delete of
                # an id that does not exist is the smallest write that makes it catch up.
                self.collection.delete(ids=[self._id(_CATCH_UP_ID)])
        embs, mds = got["embeddings"], got["metadatas"]
        out = []
        for i, rid in enumerate(got["ids"]):
            md = dict(mds[i] or {})  # type: ignore[index]
            if md.pop(TENANT_FIELD, None) != self.tenant_key:
                continue
            out.append(Record(self._own(rid), np.asarray(embs[i], dtype=np.float32) if vectors else None,  # type: ignore[index]
                              md if metadata else {}))
        return _Page(out, len(got["ids"]))

    def query(self, vector: np.ndarray, k: int, *, metadata: bool = False) -> list[Hit]:
        res = self.collection.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k,
                                    where=self._where(None), include=["metadatas", "distances"])
        ids, dists, mds = res["ids"][0], res["distances"][0], res["metadatas"][0]  # type: ignore[index]
        hits = []
        for rid, dist, md in zip(ids, dists, mds):
            md = dict(md or {})
            md.pop(TENANT_FIELD, None)
            hits.append(Hit(self._own(rid), 1.0 - float(dist), md if metadata else None))
        return hits

    def count(self) -> int:
        n, offset = 0, 0
        while True:  # a page at a time (see get)
            page = len(self.collection.get(where=self._where(None), include=[], limit=_GET_PAGE, offset=offset)["ids"])  # type: ignore[arg-type]
            n += page
            if page < _GET_PAGE:
                return n
            offset += _GET_PAGE


def connect(settings: Settings) -> "ChromaClient":
    """A Chroma client from ``settings.chroma``: HttpClient when ``url`` is set (checked with a heartbeat),
    else an embedded PersistentClient at ``settings.chroma_path``; MemoryUnavailableError otherwise."""
    import chromadb
    from chromadb.config import Settings as ClientSettings

    client_settings = ClientSettings(anonymized_telemetry=False)
    url = settings.chroma.url
    try:
        if url:
            u = urlparse(url if "://" in url else f"http://{url}")
            client = chromadb.HttpClient(
                host=u.hostname or "localhost",
                port=u.port or (443 if u.scheme == "https" else 8000),
                ssl=u.scheme == "https",
                settings=client_settings,
            )
            client.heartbeat()
            return client
        path = settings.chroma_path
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=client_settings)
    except Exception as exc:  # noqa: BLE001 - chromadb raises many types for an unreachable/broken store
        where = url or str(settings.chroma_path)
        raise MemoryUnavailableError(f"Cannot reach concept memory at {where}: {exc}") from exc


class ChromaBackend:
    """:class:`~slc.memory.index.IndexBackend` on one Chroma client (see the module docstring).

    ``client``: a client the caller opened and closes; None = connect from ``settings.chroma``.
    """

    def __init__(self, settings: Settings, client: "ChromaClient | None" = None) -> None:
        self.settings = settings
        self._owns_client = client is None
        self.client = connect(settings) if client is None else client
        self._prefix = slug(settings.chroma.collection_prefix, 20)
        self._collections: dict[IndexKind, Collection] = {}
        self._lock = threading.Lock()

    def _collection(self, kind: IndexKind) -> "Collection":
        with self._lock:
            if kind not in self._collections:
                c = self.settings.chroma
                try:
                    self._collections[kind] = self.client.get_or_create_collection(
                        f"{self._prefix}-{kind}",
                        embedding_function=None,
                        metadata={"slc_kind": kind, "slc_layout": "shared"},
                        configuration={
                            "hnsw": {
                                "space": "cosine",
                                "ef_search": c.hnsw_ef_search,
                                "ef_construction": c.hnsw_ef_construction,
                                "max_neighbors": c.hnsw_m,
                                "sync_threshold": c.hnsw_sync_threshold,
                            }
                        },
                    )
                except Exception as exc:  # noqa: BLE001 - chromadb raises many types for an unreachable/broken store
                    raise MemoryUnavailableError(f"Cannot open concept memory collections: {exc}") from exc
            return self._collections[kind]

    def open_index(self, tenant_key: str, kind: IndexKind) -> ChromaIndex:
        return ChromaIndex(self._collection(kind), tenant_key)

    def lock_path(self, tenant_key: str) -> Path:
        if self._owns_client and self.settings.chroma.mode == "embedded":
            return Path(str(self.settings.chroma_path).rstrip("/") + ".lock")
        return self.settings.data_dir / "locks" / f"memory-{tenant_key}.lock"

    def close(self) -> None:
        if self._owns_client:
            close = getattr(self.client, "close", None)
            if callable(close):
                close()


__all__ = ["TENANT_FIELD", "ChromaBackend", "ChromaIndex", "connect"]
