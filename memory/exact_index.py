"""An in-process :class:`~slc.memory.index.VectorIndex` with exact search: :class:`ExactIndex`.

Why exact, in process: one tenant's concepts are few (tens to thousands) and even 100k reference images
are one matrix-vector product (benchmarks/memory_query.py: exact search is as fast as Chroma's HNSW at
100k and 3-8x faster at 10-30k), with recall 1.0 where HNSW fell to 0.52 on uniform vectors. Why hash
indexes on chosen metadata fields: a name lookup (``name_lower``) or a digest lookup (``sha256``) must
not scan every record; with a hash index it costs the same at 10 concepts and at 100k.

It is what :mod:`slc.memory.mirror` keeps per tenant in front of the durable store; on its own it keeps
nothing across processes. Not thread-safe: its owner serializes access.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

import numpy as np

from slc.memory.index import Hit, Metadata, Record, Scalar, Where

#: Bytes per record besides its id, its metadata text and its vector (list slots, the id -> row entry, the
#: hash-index entries, their share of the owner's bookkeeping), and per index: calibrated with tracemalloc
#: on 300 tenants x 10 concepts (benchmarks/tenants.py), so a cache cap in bytes means about that much.
_RECORD_OVERHEAD = 300
_INDEX_OVERHEAD = 2048
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


class ExactIndex:
    """Records in memory: ids, metadata (as compact JSON text: a tenant's copy costs about half of what
    Python dicts would) and float32 vectors in one contiguous matrix.

    ``keys``: metadata fields with a hash index, so a ``where`` on them costs O(matches), not O(records).
    A record may lack a vector (loaded without one); queries skip it until :meth:`set_vectors` gives one.
    """

    def __init__(self, name: str, *, keys: Iterable[str] = ()) -> None:
        self.name = name
        self._keys = tuple(keys)
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._meta: list[str] = []  # JSON text of each record's metadata
        self._vecs: np.ndarray | None = None  # (capacity, dim); rows >= len(self._ids) are free
        self._has: np.ndarray = np.zeros(0, dtype=bool)  # which rows hold a vector
        # value -> the id holding it, or the set of ids when several do (most values are unique)
        self._by: dict[str, dict[Scalar, str | set[str]]] = {k: {} for k in self._keys}
        self._bytes = 0  # ids and metadata text

    # -- bookkeeping -------------------------------------------------------------------------------------
    def _index(self, rid: str, metadata: Metadata) -> None:
        for k in self._keys:
            if k in metadata:
                by, value = self._by[k], metadata[k]
                held = by.get(value)
                by[value] = rid if held is None else (held | {rid} if isinstance(held, set) else {held, rid})

    def _unindex(self, rid: str, metadata: Metadata) -> None:
        for k in self._keys:
            if k in metadata:
                by, value = self._by[k], metadata[k]
                held = by.get(value)
                if held == rid:
                    del by[value]
                elif isinstance(held, set):
                    held.discard(rid)
                    if len(held) == 1:
                        by[value] = next(iter(held))

    def _ids_of(self, key: str, value: Scalar) -> Iterable[str]:
        held = self._by[key].get(value)
        return () if held is None else (held,) if isinstance(held, str) else held

    def _reserve(self, n: int, dim: int, *, exact: bool = False) -> None:
        """Room for ``n`` vectors: exactly ``n`` for a bulk load, else doubling (amortized appends)."""
        if self._vecs is not None and self._vecs.shape[1] != dim:
            raise ValueError(f"index {self.name!r} holds {self._vecs.shape[1]}-d vectors; got {dim}-d")
        cap = 0 if self._vecs is None else self._vecs.shape[0]
        if n <= cap:
            return
        new_cap = n if exact else max(n, 2 * cap, 8)
        vecs = np.zeros((new_cap, dim), dtype=np.float32)
        has = np.zeros(new_cap, dtype=bool)
        if self._vecs is not None:
            vecs[:cap] = self._vecs
            has[:cap] = self._has
        self._vecs, self._has = vecs, has

    def _set_row(self, row: int, vector: np.ndarray) -> None:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._reserve(max(row + 1, len(self._ids)), v.shape[0])
        self._vecs[row] = v  # type: ignore[index]
        self._has[row] = True

    @property
    def nbytes(self) -> int:
        """What this index holds in memory, approximately (vectors exactly; ids and metadata by their text)."""
        vec = 0 if self._vecs is None else self._vecs.nbytes + self._has.nbytes
        return vec + self._bytes + _RECORD_OVERHEAD * len(self._ids) + _INDEX_OVERHEAD

    @property
    def has_all_vectors(self) -> bool:
        if not self._ids:
            return True
        return self._vecs is not None and bool(self._has[: len(self._ids)].all())

    # -- VectorIndex -------------------------------------------------------------------------------------
    def add(self, records: Sequence[Record]) -> None:
        for r in records:
            if r.id in self._pos:
                raise ValueError(f"record {r.id!r} already exists in {self.name!r}")
        first = next((r.vector for r in records if r.vector is not None), None)
        if first is not None:  # one allocation for a bulk load (a tenant's copy), not a doubled one
            self._reserve(len(self._ids) + len(records), np.asarray(first).size, exact=self._vecs is None)
        for r in records:
            row = len(self._ids)
            self._ids.append(r.id)
            self._pos[r.id] = row
            text = _dumps(r.metadata)
            self._meta.append(text)
            self._bytes += sys.getsizeof(text) + sys.getsizeof(r.id)
            self._index(r.id, r.metadata)
            if r.vector is not None:
                self._set_row(row, r.vector)
            elif self._vecs is not None:
                self._reserve(row + 1, self._vecs.shape[1])
                self._has[row] = False

    def update(self, records: Sequence[Record]) -> None:
        for r in records:
            row = self._pos.get(r.id)
            if row is None:
                continue
            old = _loads(self._meta[row])
            new = {**old, **r.metadata}
            self._unindex(r.id, old)
            text = _dumps(new)
            self._bytes += sys.getsizeof(text) - sys.getsizeof(self._meta[row])
            self._meta[row] = text
            self._index(r.id, new)
            if r.vector is not None:
                self._set_row(row, r.vector)

    def delete(self, ids: Sequence[str]) -> None:
        for rid in ids:
            row = self._pos.pop(rid, None)
            if row is None:
                continue
            text = self._meta[row]
            self._unindex(rid, _loads(text))
            self._bytes -= sys.getsizeof(text) + sys.getsizeof(rid)
            last = len(self._ids) - 1
            if row != last:  # move the last record into the hole: the matrix stays dense
                moved = self._ids[last]
                self._ids[row], self._meta[row] = moved, self._meta[last]
                self._pos[moved] = row
                if self._vecs is not None:
                    self._vecs[row] = self._vecs[last]
                    self._has[row] = self._has[last]
            self._ids.pop()
            self._meta.pop()
            if self._vecs is not None:
                self._has[last] = False

    def set_vectors(self, records: Sequence[Record]) -> None:
        """Give existing records their vectors (records loaded without them); unknown ids are ignored."""
        for r in records:
            row = self._pos.get(r.id)
            if row is not None and r.vector is not None:
                self._set_row(row, r.vector)

    def _rows(self, ids: Sequence[str] | None, where: Where | None) -> list[int]:
        if ids is not None:
            rows = [self._pos[i] for i in dict.fromkeys(ids) if i in self._pos]
        elif where:
            indexed = next((k for k in where if k in self._by), None)
            if indexed is not None:
                wanted = where[indexed]
                values = [wanted] if isinstance(wanted, (str, int, float, bool)) else list(wanted)
                rows = sorted({self._pos[i] for v in values for i in self._ids_of(indexed, v)})
            else:
                rows = list(range(len(self._ids)))
        else:
            rows = list(range(len(self._ids)))
        if where:
            rows = [r for r in rows if _matches(_loads(self._meta[r]), where)]
        return rows

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        limit: int | None = None,
        vectors: bool = False,
        metadata: bool = True,
    ) -> list[Record]:
        rows = self._rows(ids, where)
        if limit is not None:
            rows = rows[:limit]
        return [
            Record(
                self._ids[r],
                self._vecs[r].copy() if vectors and self._vecs is not None and self._has[r] else None,
                _loads(self._meta[r]) if metadata else {},
            )
            for r in rows
        ]

    def query(self, vector: np.ndarray, k: int, *, metadata: bool = False) -> list[Hit]:
        n = len(self._ids)
        if n == 0 or k <= 0 or self._vecs is None:
            return []
        sims = self._vecs[:n] @ np.asarray(vector, dtype=np.float32).reshape(-1)
        if not self._has[:n].all():
            sims[~self._has[:n]] = -np.inf
        k = min(k, n)
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-sims[top], kind="stable")]
        return [
            Hit(self._ids[r], float(sims[r]), _loads(self._meta[r]) if metadata else None)
            for r in top
            if sims[r] != -np.inf
        ]

    def count(self) -> int:
        return len(self._ids)


def _matches(metadata: Metadata, where: Where) -> bool:
    for key, wanted in where.items():
        value = metadata.get(key)
        if isinstance(wanted, (str, int, float, bool)):
            if value != wanted:
                return False
        elif value not in wanted:
            return False
    return True


__all__ = ["ExactIndex"]
