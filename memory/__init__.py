"""slc.memory: the user's personal concepts (names, reference images, descriptions, identities, trees).

Entry points: :class:`slc.memory.store.ConceptMemory` (Chroma-backed, per tenant),
:func:`slc.memory.images.load_image` (the one safe way to read a user image),
:class:`slc.memory.images.ImageStore`, the embedder protocols in :mod:`slc.memory.embedders`, importers
in :mod:`slc.memory.importers`, and the ``slc concept`` CLI in :mod:`slc.memory.cli`.
Names resolve lazily so ``import slc.memory`` stays cheap.
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

_EXPORTS = {
    "ConceptMemory": "slc.memory.store",
    "normalize_name": "slc.memory.store",
    "tenant_key": "slc.memory.store",
    "load_image": "slc.agent.images",
    "ImageStore": "slc.memory.images",
    "ImageEmbedder": "slc.memory.embedders",
    "TextEmbedder": "slc.memory.embedders",
    "HFImageEmbedder": "slc.memory.embedders",
    "SentenceTransformerTextEmbedder": "slc.memory.embedders",
    "get_image_embedder": "slc.memory.embedders",
    "get_text_embedder": "slc.memory.embedders",
    "Concept": "slc.memory.types",
    "Identity": "slc.memory.types",
    "ReferenceImage": "slc.memory.types",
    "RecallHit": "slc.memory.types",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
