"""Yo'LLaVA folder layout: ``yollava-data/train/<concept>/<i>.png`` (+ ``negative_example/``, skipped).

``path`` may be the dataset root (containing ``train/``) or its parent (containing ``yollava-data/``).
Yo'LLaVA ships no descriptions; combine with the ``slc_eval`` importer (descriptions) or RAP's database.
"""

from __future__ import annotations

from pathlib import Path

from slc.agent.errors import SLCError
from slc.memory.importers.common import ConceptSpec, ImportPlan, list_images


def discover(path: str | Path, *, split: str = "train") -> ImportPlan:
    root = Path(path).expanduser()
    for cand in (root / split, root / "yollava-data" / split):
        if cand.is_dir():
            base = cand
            break
    else:
        raise SLCError(f"No Yo'LLaVA '{split}/' folder under {root} (expected {root}/{split}/<concept>/*.png)")
    plan = ImportPlan(format="yollava", source=str(base))
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        images = list_images(folder)  # negative_example/ is a sub-folder: never listed
        spec = ConceptSpec(name=folder.name, images=images)
        if not images:
            plan.warnings.append(f"{folder}: no images")
        plan.concepts.append(spec)
    return plan
