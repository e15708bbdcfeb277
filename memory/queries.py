"""What the small VLM is told about a stored concept: the ONE Concept -> ConceptQuery rule, routing included.

Why one function: the graph's personalize node, the ``detect_personal_concepts`` tool, ``slc scan`` and the
evals' small mode must send the small VLM exactly the same facts for a concept (description, identity,
reference photos when asked, routed meta adapter), or a benchmark measures something the product never
runs. Routing: the adapter stored with the concept when the bank has it, else the bank's nearest centroid to
the concept's mean reference-image embedding (read from memory only then), else no adapter (base model).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from slc.agent.detection import ConceptQuery
from slc.memory.types import Concept

if TYPE_CHECKING:
    import numpy as np

    from slc.agent.adapters import AdapterBank


def concept_query(
    concept: Concept,
    *,
    bank: "AdapterBank | None" = None,
    embedding: "Callable[[], np.ndarray] | None" = None,
    with_reference_images: bool = False,
    feedback: str | None = None,
) -> ConceptQuery:
    """The ConceptQuery for ``concept``.

    ``embedding``: returns the concept's mean reference embedding (e.g. ``lambda:
    memory.concept_embedding(name)``); called only when the bank must route by centroid.
    ``with_reference_images``: put the stored reference photos into the query (a second pass after the
    verifier disputed a claim, or a reference-conditioned detector).
    """
    adapter = concept.adapter
    if bank is not None:
        adapter = bank.route_concept(concept.adapter, embedding if concept.images else None)
    identity = concept.identity
    return ConceptQuery(
        name=concept.name,
        description=concept.description or "",
        category=identity.category if identity else None,
        attributes=dict(identity.attributes) if identity else {},
        reference_images=[Path(i.path) for i in concept.images] if with_reference_images else [],
        adapter=adapter,
        feedback=(feedback or None),
    )


__all__ = ["concept_query"]
