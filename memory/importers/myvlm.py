"""MyVLM layout: ``<root>/<concept>/*.jpg`` with ``<root>/<concept>/captions_augmented.json`` or ``captions.json``.

The captions file maps an image file name to its caption (a string or a list of strings); captions name
the concept. MyVLM's README allows either name and its code reads ``captions_augmented.json`` when present,
so we do too (:func:`captions_file`). The first caption becomes the description (users can edit it later);
captions that name files absent on disk are reported in ``missing_images``. A concept folder without a
captions file is still imported, with a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

from slc.agent.errors import SLCError
from slc.memory.importers.common import ConceptSpec, ImportPlan, list_images


CAPTION_FILES = ("captions_augmented.json", "captions.json")  # MyVLM's order of preference


def captions_file(folder: Path) -> Path | None:
    """The captions file MyVLM would read in a concept folder, or None."""
    return next((folder / n for n in CAPTION_FILES if (folder / n).is_file()), None)


def discover(path: str | Path) -> ImportPlan:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SLCError(f"MyVLM data folder not found: {root}")
    plan = ImportPlan(format="myvlm", source=str(root))
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        spec = ConceptSpec(name=folder.name, images=list_images(folder))
        cap_file = captions_file(folder)
        if cap_file is not None:
            try:
                captions = json.loads(cap_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                plan.warnings.append(f"{cap_file}: invalid JSON ({exc})")
                captions = {}
            if isinstance(captions, dict):
                for fname, cap in captions.items():
                    if not (folder / fname).is_file():
                        spec.missing_images.append(str(folder / fname))
                    texts = [cap] if isinstance(cap, str) else [c for c in (cap or []) if isinstance(c, str)]
                    if texts and not spec.description:
                        spec.description = texts[0]
            else:
                plan.warnings.append(f"{cap_file}: expected an object of file name -> caption")
        else:
            plan.warnings.append(f"{folder}: no captions.json (nor captions_augmented.json)")
        if not spec.images and not spec.missing_images:
            continue  # not a concept folder
        plan.concepts.append(spec)
    return plan
