"""Reads from memory, writes through to the durable store: :class:`MirroredBackend`.

Why: the durable store (Chroma, shared by every tenant and every process) answers a tenant-filtered
similarity query in 124 ms at 100k records and a name filter in time that grows with the store
(benchmarks/memory_query.py, benchmarks/tenants.py). A tenant's records are few and are read far more often
than written, so each process keeps an in-process copy (:class:`~slc.memory.exact_index.ExactIndex`:
exact search, hash lookups by name and digest) of the tenants it serves, and every write goes to the
durable store first, then to the copy.

Staying correct across processes: every write to a tenant's index bumps that index's *stamp*, a small
file beside the tenant's write lock (:meth:`IndexBackend.lock_path <slc.memory.index.IndexBackend.lock_path>`
+ ``.stamps``), replaced atomically while the writer holds that lock. Every read first compares the stamp
with the one its copy was loaded at (one file read, ~10 us) and reloads the copy when another process
wrote. So processes that share a durable store share the stamps exactly as they share the write locks
(docs/SCALING.md).

Bounded: copies live in one least-recently-used cache per backend, at most ``cache_bytes`` in all (the
copy in use is never evicted, so one tenant larger than the cap still works). Concept records are
loaded without their text vectors; those load on the first description query of that tenant.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from slc.memory.exact_index import ExactIndex
from slc.memory.index import Hit, IndexBackend, IndexKind, Record, VectorIndex, Where

#: Metadata fields looked up by value, per kind of index: a name in a question, a digest on delete.
_KEYS: dict[IndexKind, tuple[str, ...]] = {"concepts": ("name_lower",), "images": ("sha256", "concept_id")}
#: Kinds whose vectors are loaded with the copy (image queries are every visual turn; description
#: queries are rare, so concept text vectors load on first use).
_EAGER_VECTORS: dict[IndexKind, bool] = {"concepts": False, "images": True}


class _Copy:
    """One tenant's copy of one index, the stamp it was loaded at, and a lock serializing its use."""

    __slots__ = ("key", "index", "stamp", "lock", "size")

    def __init__(self, key: tuple[str, IndexKind], index: ExactIndex, stamp: str) -> None:
        self.key = key
        self.index = index
        self.stamp = stamp
        self.lock = threading.Lock()
        self.size = index.nbytes  # what the cache counts for it (updated by MirroredBackend.resize)


class MirroredBackend:
    """:class:`~slc.memory.index.IndexBackend` that serves reads from in-process copies of ``durable``.

    ``cache_bytes``: the most the copies of all tenants may hold. Closing it closes ``durable``.
    """

    def __init__(self, durable: IndexBackend, cache_bytes: int) -> None:
        self.durable = durable
        self.cache_bytes = cache_bytes
        self._copies: OrderedDict[tuple[str, IndexKind], _Copy] = OrderedDict()
        self._total = 0  # sum of the cached copies' sizes
        self._lock = threading.Lock()

    # -- stamps ------------------------------------------------------------------------------------------
    def stamp_path(self, tenant_key: str, kind: IndexKind) -> Path:
        """Where the stamp of the tenant's index lives: beside the lock its writers hold."""
        lock = self.durable.lock_path(tenant_key)
        return lock.with_name(lock.name + ".stamps") / f"{tenant_key}.{kind}"

    @staticmethod
    def read_stamp(path: Path) -> str:
        """The stamp at ``path`` ("" before the first write through a mirrored backend)."""
        try:
            with open(path, encoding="ascii") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @staticmethod
    def bump(path: Path) -> str:
        """A new stamp at ``path`` (after a write, under the tenant's write lock); returns it."""
        new = uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{new}.tmp")
        tmp.write_text(new, encoding="ascii")
        os.replace(tmp, path)
        return new

    # -- copies ------------------------------------------------------------------------------------------
    def copy(self, tenant_key: str, kind: IndexKind, durable: VectorIndex, stamp_path: Path) -> _Copy:
        """The tenant's copy of ``kind``, loaded (or reloaded, if another process wrote) from ``durable``."""
        key = (tenant_key, kind)
        stamp = self.read_stamp(stamp_path)
        with self._lock:
            held = self._copies.get(key)
            if held is not None:
                self._copies.move_to_end(key)
                if held.stamp == stamp:
                    return held
        # Load outside the backend lock (other tenants keep reading); the stamp was read first, so a write
        # landing during the load only makes the next read reload again.
        index = ExactIndex(durable.name, keys=_KEYS[kind])
        index.add(durable.get(vectors=_EAGER_VECTORS[kind]))
        fresh = _Copy(key, index, stamp)
        with self._lock:
            held = self._copies.get(key)
            if held is not None and held.stamp == stamp:
                return held  # another thread loaded it meanwhile
            if held is not None:
                self._total -= held.size
            self._copies[key] = fresh
            self._total += fresh.size
            self._trim()
        return fresh

    def _trim(self) -> None:
        """Evict the least recently used copies until all fit in ``cache_bytes`` (the newest always stays)."""
        while self._total > self.cache_bytes and len(self._copies) > 1:
            _, old = self._copies.popitem(last=False)
            self._total -= old.size

    def resize(self, copy: _Copy) -> None:
        """Count a copy's new size after it changed (a write, vectors loaded), evicting others if need be."""
        with self._lock:
            size = copy.index.nbytes
            if self._copies.get(copy.key) is copy:  # an evicted or replaced copy is no longer counted
                self._total += size - copy.size
                self._trim()
            copy.size = size

    def forget(self, tenant_key: str) -> None:
        """Drop the tenant's copies (they reload from the durable store on next use)."""
        with self._lock:
            for kind in _KEYS:
                old = self._copies.pop((tenant_key, kind), None)
                if old is not None:
                    self._total -= old.size

    @property
    def cached_bytes(self) -> int:
        """What the cached copies hold, as the cache counts it."""
        with self._lock:
            return self._total

    # -- IndexBackend ------------------------------------------------------------------------------------
    def open_index(self, tenant_key: str, kind: IndexKind) -> MirroredIndex:
        return MirroredIndex(self, tenant_key, kind, self.durable.open_index(tenant_key, kind))

    def lock_path(self, tenant_key: str) -> Path:
        return self.durable.lock_path(tenant_key)

    def close(self) -> None:
        with self._lock:
            self._copies.clear()
            self._total = 0
        self.durable.close()


class MirroredIndex:
    """One tenant's index: reads from the in-process copy; writes go to the durable index, then the copy."""

    def __init__(self, backend: MirroredBackend, tenant_key: str, kind: IndexKind, durable: VectorIndex) -> None:
        self._backend = backend
        self._tenant_key = tenant_key
        self._kind = kind
        self.durable = durable
        self.name = durable.name
        self._stamp_path = backend.stamp_path(tenant_key, kind)

    def _copy(self) -> _Copy:
        return self._backend.copy(self._tenant_key, self._kind, self.durable, self._stamp_path)

    def _write(self, durable_write: Callable[[], None], copy_write: Callable[[ExactIndex], None]) -> None:
        copy = self._copy()  # reloaded first if another process wrote since
        try:
            durable_write()
            with copy.lock:
                copy_write(copy.index)
                copy.stamp = self._backend.bump(self._stamp_path)
            self._backend.resize(copy)
        except BaseException:
            self._backend.forget(self._tenant_key)  # whatever reached the durable store, the next read sees it
            raise

    def add(self, records: Sequence[Record]) -> None:
        if records:
            self._write(lambda: self.durable.add(records), lambda ix: ix.add(records))

    def update(self, records: Sequence[Record]) -> None:
        if records:
            self._write(lambda: self.durable.update(records), lambda ix: ix.update(records))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._write(lambda: self.durable.delete(ids), lambda ix: ix.delete(ids))

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        limit: int | None = None,
        vectors: bool = False,
        metadata: bool = True,
    ) -> list[Record]:
        copy = self._copy()
        if vectors:
            self._complete(copy)
        with copy.lock:
            return copy.index.get(ids, where=where, limit=limit, vectors=vectors, metadata=metadata)

    def query(self, vector: np.ndarray, k: int, *, metadata: bool = False) -> list[Hit]:
        copy = self._copy()
        self._complete(copy)
        with copy.lock:
            return copy.index.query(vector, k, metadata=metadata)

    def _complete(self, copy: _Copy) -> None:
        """Load the vectors a copy was loaded without (concept text vectors, on the first description query)."""
        with copy.lock:
            if copy.index.has_all_vectors:
                return
            copy.index.set_vectors(self.durable.get(vectors=True, metadata=False))
        self._backend.resize(copy)

    def count(self) -> int:
        copy = self._copy()
        with copy.lock:
            return copy.index.count()


__all__ = ["MirroredBackend", "MirroredIndex"]
