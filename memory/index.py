"""What concept memory needs of a vector store: a small protocol, so a store is a class, not a rewrite.

Why a protocol: :class:`~slc.memory.store.ConceptMemory` owns the rules (atomic registration, the journal,
per-concept recall); a vector store only keeps records and finds neighbours. Chroma is one backend
(:mod:`slc.memory.chroma_index`); an in-process exact index, or a mix (concept records on Chroma, image
vectors in process), implements the same two protocols and is named in :mod:`slc.memory.backends`.

Contract every backend keeps:
- vectors are float32 and L2-normalized by the caller; ``similarity`` is the cosine (1.0 = same direction);
- ``get`` with ``ids`` returns only the records that exist (any order); ``ids=[]`` returns nothing;
- a :data:`Where` filter ANDs its fields; a field given a list matches any of its values;
- ``update`` changes the given metadata keys (others stay) and the vector only when one is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

Scalar = str | int | float | bool
Metadata = dict[str, Scalar]
#: field -> value (equality) or list of values (membership); several fields must all match.
Where = Mapping[str, Scalar | Sequence[Scalar]]
#: The two indexes of a tenant: one record per concept (text vector), one per reference image (image vector).
IndexKind = Literal["concepts", "images"]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record; ``vector`` is None when it was not asked for (or not changed, in ``update``)."""

    id: str
    vector: np.ndarray | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """A nearest neighbour; ``metadata`` is None unless the query asked for it."""

    id: str
    similarity: float
    metadata: Metadata | None = None


class VectorIndex(Protocol):
    """One named collection of records of one tenant."""

    name: str

    def add(self, records: Sequence[Record]) -> None:
        """Insert new records (every one with a vector)."""
        ...

    def update(self, records: Sequence[Record]) -> None:
        """Change existing records (see the module docstring)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these records; missing ids are ignored."""
        ...

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        limit: int | None = None,
        vectors: bool = False,
        metadata: bool = True,
    ) -> list[Record]:
        """Records by id and/or filter (all of them when both are None), with what was asked for."""
        ...

    def query(self, vector: np.ndarray, k: int, *, metadata: bool = False) -> list[Hit]:
        """Up to ``k`` nearest records to ``vector``, most similar first."""
        ...

    def count(self) -> int:
        ...


class IndexBackend(Protocol):
    """Opens tenants' indexes on one store connection; a server process shares one for every tenant."""

    def open_index(self, tenant_key: str, kind: IndexKind) -> VectorIndex:
        """The tenant's index of this kind, created empty on first use; MemoryUnavailableError if the store
        cannot be reached."""
        ...

    def lock_path(self, tenant_key: str) -> Path:
        """The file whose lock serializes writes to this tenant's indexes, across processes."""
        ...

    def close(self) -> None:
        """Release the connection (only what this backend opened itself)."""
        ...


__all__ = ["Hit", "IndexBackend", "IndexKind", "Metadata", "Record", "Scalar", "VectorIndex", "Where"]
