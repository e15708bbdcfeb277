"""How a :class:`~slc.memory.types.Concept` is laid out in index records, and read back.

- Concept record: id = a stable uuid (survives renames), the text embedding of name + category +
  description, and metadata holding everything else (identity and CaT tree as JSON, computed once at
  registration so queries never recompute them). It lists the concept's image digests and is written
  LAST: it is the commit marker.
- Image record: one per (concept, reference image), id ``<concept id>:<sha256>``, the image embedding.
  An image query reads the concept back from the id (:func:`concept_of`), with no metadata fetch:
  fetching it cost ~1.8 ms of a ~5 ms query at 10k concepts (benchmarks/memory_query.py). Image records
  that no concept record lists are invisible to queries and are garbage.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

from slc.memory.images import ImageStore
from slc.memory.index import Metadata, Record
from slc.memory.types import Concept, Identity, ReferenceImage

_CONCEPT_ID_RE = re.compile(r"[0-9a-f]{32}")


def new_concept_id() -> str:
    return uuid.uuid4().hex


def is_concept_id(text: str) -> bool:
    """Whether ``text`` has the shape of a concept id (so a lookup tries it as an id before as a name)."""
    return isinstance(text, str) and _CONCEPT_ID_RE.fullmatch(text) is not None


def image_record_id(concept_id: str, sha256: str) -> str:
    return f"{concept_id}:{sha256}"


def concept_of(image_record_id: str) -> str:
    return image_record_id.partition(":")[0]


def image_record(concept_id: str, sha256: str, vector: np.ndarray) -> Record:
    return Record(image_record_id(concept_id, sha256), vector, {"concept_id": concept_id, "sha256": sha256})


def _rel_file(ref: ReferenceImage) -> str:
    p = Path(ref.path)
    return f"{p.parent.name}/{p.name}"


def concept_record(concept: Concept, vector: np.ndarray | None = None) -> Record:
    """The concept's record; ``vector`` (its text embedding) only when it is new or its text changed."""
    c = concept
    images = [{"sha256": i.sha256, "width": i.width, "height": i.height, "file": _rel_file(i)} for i in c.images]
    metadata: Metadata = {
        "name": c.name,
        "name_lower": c.name.lower(),
        "description": c.description,
        "category": c.category or "",
        "identity": c.identity.model_dump_json() if c.identity else "",
        "tree": json.dumps(c.tree) if c.tree is not None else "",
        "adapter": c.adapter or "",
        "images": json.dumps(images),
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }
    return Record(c.id, vector, metadata)


def listed_shas(metadata: Metadata) -> set[str]:
    """The image digests a concept record lists (its committed reference images)."""
    return {i["sha256"] for i in json.loads(str(metadata.get("images") or "[]"))}


def to_concept(concept_id: str, metadata: Metadata, *, tenant: str, images: ImageStore) -> Concept:
    md = metadata
    refs = [
        ReferenceImage(
            sha256=i["sha256"],
            # "file" (relative to the tenant's image store) saves a stat per image on the recall path
            path=str(images.root / i["file"]) if i.get("file") else str(images.path(i["sha256"])),
            width=i["width"],
            height=i["height"],
        )
        for i in json.loads(str(md.get("images") or "[]"))
    ]
    return Concept(
        id=concept_id,
        tenant=tenant,
        name=md["name"],
        description=md.get("description") or "",
        identity=Identity.model_validate_json(str(md["identity"])) if md.get("identity") else None,
        tree=json.loads(str(md["tree"])) if md.get("tree") else None,
        images=refs,
        adapter=md.get("adapter") or None,
        created_at=datetime.fromisoformat(str(md["created_at"])),
        updated_at=datetime.fromisoformat(str(md["updated_at"])),
    )


__all__ = [
    "concept_of",
    "concept_record",
    "image_record",
    "image_record_id",
    "is_concept_id",
    "listed_shas",
    "new_concept_id",
    "to_concept",
]
