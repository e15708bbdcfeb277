"""Registering a concept: its photos into memory, and its identity read off those photos by the small VLM.

Why here (with the service factory) and not in memory: the identity (category + attributes, what the
verifier and the text-only recognition protocol read) must come from the user's photos through the pipeline,
never from whoever typed the description, so registration needs the small VLM as well as the memory. When the
caller gives an identity, it is kept; when no small VLM is configured, the concept is registered without one
(recognition by reference photos does not need it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from slc.agent.images import ImageSource, image_list
from slc.graphs.services import ServiceFactory
from slc.memory.store import ConceptMemory
from slc.memory.types import Concept, Identity

log = logging.getLogger(__name__)


def derived_identity(services: ServiceFactory, images: Sequence[ImageSource], category: str | None = None) -> Identity | None:
    """The small VLM's reading of the photos (see :meth:`slc.agent.small_vlm.SmallVLM.describe_identity`), or None
    when no small VLM is configured or it does not describe in the identity form."""
    s = services.settings.small
    if not (s.model or s.adapter_bank):
        return None
    derived = services.small_vlm().describe_identity(list(images))
    if derived is None:
        log.info("the small VLM gave no identity-form description of the photos; registering without an identity")
        return None
    return Identity(category=category or derived.category, attributes=derived.attributes)


def identity_reader(services: ServiceFactory) -> Callable[[list[ImageSource], str | None], Identity | None]:
    """``(photos, category) -> identity`` for importers (:func:`slc.memory.importers.register`'s ``identify``):
    a concept imported from a dataset gets its identity read off its photos, as one registered by hand does."""
    return lambda photos, category=None: derived_identity(services, photos, category)


def register_concept(
    services: ServiceFactory,
    name: str,
    images: ImageSource | Sequence[ImageSource],
    *,
    tenant: str | None = None,
    description: str = "",
    category: str | None = None,
    identity: Identity | None = None,
    tree: dict | None = None,
    memory: ConceptMemory | None = None,
) -> Concept:
    """Add the concept to ``tenant``'s memory (or to ``memory``), all or nothing; the identity is derived from
    the photos unless given. Errors are memory's (bad name, duplicate, unreadable photo) and the small VLM's
    (not loadable)."""
    photos = image_list(images)
    if identity is None:
        identity = derived_identity(services, photos, category)
    target = memory if memory is not None else services.memory(tenant)
    return target.add(name, photos, description=description, category=category, identity=identity, tree=tree)


__all__ = ["derived_identity", "identity_reader", "register_concept"]
