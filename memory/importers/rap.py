"""RAP's ``database.json``: ``{"concept_dict": {"<bo>": {name, image, info, category}}, "path_to_concept": {...}}``.

``image`` is a path relative to the folder that holds the database (or ``images_root``); ``image`` may be a
string or a list. ``info`` becomes the description, ``category`` the identity's category. Images missing
on disk are reported in ``missing_images``.
"""

from __future__ import annotations

import json
from pathlib import Path

from slc.agent.errors import InvalidConceptNameError, SLCError
from slc.memory.importers.common import ConceptSpec, ImportPlan
from slc.memory.names import normalize_name


def discover(path: str | Path, *, images_root: str | Path | None = None) -> ImportPlan:
    db = Path(path).expanduser()
    if db.is_dir():
        db = db / "database.json"
    try:
        data = json.loads(db.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SLCError(f"RAP database not found: {db}") from exc
    except ValueError as exc:
        raise SLCError(f"{db} is not valid JSON: {exc}") from exc
    concepts = data.get("concept_dict") if isinstance(data, dict) else None
    if not isinstance(concepts, dict):
        raise SLCError(f"{db}: expected a RAP database with a 'concept_dict' object")
    root = Path(images_root).expanduser() if images_root else db.parent
    plan = ImportPlan(format="rap", source=str(db))
    extra: dict[str, list[str]] = {}
    for img, key in (data.get("path_to_concept") or {}).items():
        extra.setdefault(key, []).append(img)
    for key, entry in concepts.items():
        written = str(entry.get("name") or key)
        try:
            name = normalize_name(written)
        except InvalidConceptNameError:
            name = written  # registering it fails with the memory's message, for this concept only
        rels = entry.get("image") or []
        rels = [rels] if isinstance(rels, str) else list(rels)
        rels += [r for r in extra.get(key, []) if r not in rels]
        spec = ConceptSpec(name=name, description=str(entry.get("info") or ""), category=entry.get("category") or None)
        for rel in rels:
            p = root / rel
            (spec.images if p.is_file() else spec.missing_images).append(p if p.is_file() else str(p))  # type: ignore[arg-type]
        plan.concepts.append(spec)
    return plan
