"""The Chroma backend of concept memory: :class:`ChromaIndex` (one collection) and :class:`ChromaBackend`.

Why this shape:
- Two collections PER TENANT, ``<prefix>-<tenant key>-concepts`` and ``...-images``. Separate collections
  make isolation structural (a query physically cannot see another tenant) and keep queries unfiltered: a
  metadata ``where`` filter cost ~58 ms at 100k records, an unfiltered HNSW query ~2 ms.
- Vectors are always passed explicitly (``embedding_function=None``): Chroma's default embedding function
  would try to download a model. Cosine HNSW tuned from ``settings.chroma.hnsw_*``.
- Embedded mode (a folder): writers of every tenant serialize on one lock beside the folder, since they
  share its files. Server mode, or a client the caller opened: one lock per tenant under ``data_dir/locks``.
- One client serves every tenant: a server process opens one :class:`ChromaBackend` and hands it to each
  tenant's memory. Closing it (only a client it made itself) matters in embedded mode: Chroma keeps a
  store open per process, so a memory re-created on a deleted and recreated folder would still see the
  old data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
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


def _metadatas(records: Sequence[Record]) -> list[Metadata] | None:
    return [r.metadata for r in records] if any(r.metadata for r in records) else None


class ChromaIndex:
    """:class:`~slc.memory.index.VectorIndex` on one Chroma collection (cosine space)."""

    def __init__(self, collection: "Collection") -> None:
        self.collection = collection
        self.name: str = collection.name

    def add(self, records: Sequence[Record]) -> None:
        if records:
            self.collection.add(ids=[r.id for r in records], embeddings=_vectors(records), metadatas=_metadatas(records))

    def update(self, records: Sequence[Record]) -> None:
        with_vec = [r for r in records if r.vector is not None]
        without = [r for r in records if r.vector is None]
        if with_vec:
            self.collection.update(ids=[r.id for r in with_vec], embeddings=_vectors(with_vec), metadatas=_metadatas(with_vec))
        if without:
            self.collection.update(ids=[r.id for r in without], metadatas=_metadatas(without))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.collection.delete(ids=list(ids))

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
        chroma_where = _chroma_where(where) if where else None
        if where and chroma_where is None:
            return []
        include = (["embeddings"] if vectors else []) + (["metadatas"] if metadata else [])
        got = self.collection.get(ids=list(ids) if ids is not None else None, where=chroma_where, limit=limit,
                                  include=include)  # type: ignore[arg-type]
        embs, mds = got["embeddings"], got["metadatas"]
        return [
            Record(
                rid,
                np.asarray(embs[i], dtype=np.float32) if vectors else None,  # type: ignore[index]
                dict(mds[i] or {}) if metadata else {},  # type: ignore[index]
            )
            for i, rid in enumerate(got["ids"])
        ]

    def query(self, vector: np.ndarray, k: int, *, metadata: bool = False) -> list[Hit]:
        res = self.collection.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k,
                                    include=["metadatas", "distances"] if metadata else ["distances"])
        ids, dists = res["ids"][0], res["distances"][0]  # type: ignore[index]
        mds = res["metadatas"][0] if metadata else None  # type: ignore[index]
        return [
            Hit(rid, 1.0 - float(dist), dict(mds[i] or {}) if mds is not None else None)
            for i, (rid, dist) in enumerate(zip(ids, dists))
        ]

    def count(self) -> int:
        return self.collection.count()


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

    def open_index(self, tenant_key: str, kind: IndexKind) -> ChromaIndex:
        c = self.settings.chroma
        try:
            collection = self.client.get_or_create_collection(
                f"{self._prefix}-{tenant_key}-{kind}",
                embedding_function=None,
                metadata={"slc_kind": kind, "slc_tenant_key": tenant_key},
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
        return ChromaIndex(collection)

    def lock_path(self, tenant_key: str) -> Path:
        if self._owns_client and self.settings.chroma.mode == "embedded":
            return Path(str(self.settings.chroma_path).rstrip("/") + ".lock")
        return self.settings.data_dir / "locks" / f"memory-{tenant_key}.lock"

    def close(self) -> None:
        if self._owns_client:
            close = getattr(self.client, "close", None)
            if callable(close):
                close()


__all__ = ["ChromaBackend", "ChromaIndex", "connect"]
