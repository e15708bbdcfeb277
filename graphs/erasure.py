"""Erasing a tenant: everything slc keeps of it, in one call (the CLI's ``slc concept purge`` uses it).

Why one function: a person asking to be forgotten must not depend on which entry point erased them. What
a tenant has, and where (README, "Privacy"): concepts with their embeddings and reference photos (concept
memory), the photos of its questions (its query-photo folder), and its chat threads (the session
checkpointer and the threads' transcripts; erased when asked, since a user may want their concepts gone
but their chats kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slc.graphs.photos import forget_photos
from slc.graphs.services import ServiceFactory
from slc.graphs.sessions import open_checkpointer, open_store
from slc.graphs.threads import delete_tenant_threads
from slc.graphs.transcripts import delete_transcripts


@dataclass(frozen=True)
class Erased:
    """What :func:`erase_tenant` removed."""

    tenant: str
    concepts: int
    query_photos: int
    threads: list[str] = field(default_factory=list)


def erase_tenant(services: ServiceFactory, tenant: str, *, threads: bool = False) -> Erased:
    """Erase ``tenant``'s concepts (records, embeddings, reference photos) and query photos; with ``threads``
    also every chat thread it owns in the session store of ``services.settings``."""
    concepts = services.memory(tenant).purge()
    store = services.image_store(tenant)
    photos = store.purge()
    forget_photos(store)
    deleted: list[str] = []
    if threads:
        with open_checkpointer(services.settings) as saver, open_store(services.settings) as transcripts:
            deleted = delete_tenant_threads(saver, tenant)
            delete_transcripts(transcripts, tenant)  # every transcript, also of threads already pruned away
    return Erased(tenant=tenant, concepts=concepts, query_photos=photos, threads=deleted)


__all__ = ["Erased", "erase_tenant"]
