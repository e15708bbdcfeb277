"""slc.memory: the user's personal concepts (names, reference images, descriptions, identities, trees).

Entry points: :class:`slc.memory.store.ConceptMemory` (per tenant, over the vector-index protocol of
:mod:`slc.memory.index`; Chroma backend in :mod:`slc.memory.chroma_index`, picked by
:mod:`slc.memory.backends`), names in :mod:`slc.memory.names`, :class:`slc.memory.images.ImageStore`,
the embedder protocols in :mod:`slc.memory.embedders`, Concept -> ConceptQuery in
:mod:`slc.memory.queries` and importers in :mod:`slc.memory.importers`.
Names resolve lazily so ``import slc.memory`` stays cheap.
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

_EXPORTS = {
    "ConceptMemory": "slc.memory.store",
    "normalize_name": "slc.memory.names",
    "tenant_key": "slc.memory.names",
    "IndexBackend": "slc.memory.index",
    "VectorIndex": "slc.memory.index",
    "open_backend": "slc.memory.backends",
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
