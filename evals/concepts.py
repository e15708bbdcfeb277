"""Register a benchmark's personal concepts in concept memory before the SLC modes answer its items.

Why: the SLC graph only knows what memory recalls. A benchmark's concepts (Yo'LLaVA's ``train/<concept>/``
reference photos, the descriptions inside the SLC authors' eval files, MC-LLaVA's train folders (SLC's
copies or the native ``<case>/concept/train/<concept>/``), MyVLM's concept folders) must be in the eval's own tenant (``eval-<benchmark>``, never the user's) before the first
item. The import reuses :mod:`slc.memory.importers` and is idempotent: concepts already registered are
skipped (their images are not added twice), and a description is only written when it differs, so running
``slc eval`` again costs one existence check per concept.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from slc.agent.errors import SLCError

#: Benchmarks whose concepts are Yo'LLaVA's (images under <root>/yollava-data/train/<concept>/).
YOLLAVA_FAMILY = ("yollava-vqa", "rap-yollava-vqa", "yollava-text-qa", "rap-recognition", "slc-yollava-qa",
                  "slc-yollava-sqa", "slc-yollava-vqa")


def eval_tenant(benchmark: str) -> str:
    """The tenant an eval of ``benchmark`` registers its concepts in (kept apart from the user's own)."""
    return f"eval-{benchmark}"


class ConceptImport(BaseModel):
    """What :func:`import_benchmark_concepts` did (printed by ``slc eval``)."""

    benchmark: str
    tenant: str
    sources: list[str] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)
    described: list[str] = Field(default_factory=list, description="Existing concepts whose description was set.")
    skipped: dict[str, str] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    missing_images: int = 0
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        s = (f"concepts for {self.benchmark} in tenant {self.tenant!r}: {len(self.added)} added, "
             f"{len(self.skipped)} already there, {len(self.described)} descriptions set, {len(self.failed)} failed")
        return s + (f" (from {', '.join(self.sources)})" if self.sources else " (no concept source found)")


def _slc_descriptions(files: Iterable[Path]) -> dict[str, str]:
    from slc.memory.importers import discover

    out: dict[str, str] = {}
    for f in files:
        for spec in discover("slc_eval", f).concepts:
            if len(spec.description) > len(out.get(spec.name, "")):
                out[spec.name] = spec.description
    return out


def _find(dirs: Iterable[Path], pattern: str) -> list[Path]:
    for d in dirs:
        for base in (Path(d), Path(d) / "slc"):
            found = sorted(base.glob(pattern)) if base.is_dir() else []
            if found:
                return found
    return []


def import_benchmark_concepts(memory: Any, benchmark: str, root: Path | None, annotation_dirs: Iterable[Path] = (),
                              *, max_images: int | None = None, identify: Any = None) -> ConceptImport:
    """Register ``benchmark``'s concepts from the dataset ``root`` (+ descriptions from annotation folders).

    ``memory`` is a :class:`slc.memory.ConceptMemory` of the eval's tenant. Reference images come from the
    dataset's train split only (never from the test images the items ask about). ``identify``: reads a new
    concept's identity off its photos (:func:`slc.graphs.registration.identity_reader`), as a user's
    registration does; without it, a concept whose dataset gives no category has no identity.
    """
    from slc.memory.importers import discover, register

    report = ConceptImport(benchmark=benchmark, tenant=getattr(memory, "tenant", "?"))
    dirs = [Path(d) for d in annotation_dirs if d is not None]
    plans = []
    descriptions: dict[str, str] = {}
    if root is None:
        report.warnings.append("no --root: no reference images to import")
    elif benchmark in YOLLAVA_FAMILY:
        try:
            plans.append(discover("yollava", root))
        except SLCError as exc:
            report.warnings.append(str(exc))
        files = _find(dirs + [root], "yollava_eval__*.json")
        descriptions = _slc_descriptions(files)
        report.sources += [str(f) for f in files]
    elif benchmark.startswith("mc-llava-"):  # native layout: <case>/concept/train/<concept>/ per case
        for train in sorted(Path(root).glob("*/concept/train")):
            plans.append(discover("yollava", train.parent))
    elif benchmark.startswith("mc-"):
        files = _find(dirs + [root], "mc_eval__*.json")
        for f in files:
            plans.append(discover("slc_eval", f, images_root=root))
    elif benchmark == "myvlm-captions":
        plans.append(discover("myvlm", root))
    else:
        report.warnings.append(f"no concept importer is known for {benchmark}")
    for plan in plans:
        report.sources.append(plan.source)
        for spec in plan.concepts:
            if not spec.description and spec.name in descriptions:
                spec.description = descriptions[spec.name]
        got = register(memory, plan, on_exists="skip", max_images=max_images, identify=identify)
        report.added += [n for n in got.added if n not in report.added]
        report.failed.update(got.failed)
        report.missing_images += len(got.missing_images)
        report.warnings += got.warnings
        for name, why in got.skipped.items():
            if name not in report.added:
                report.skipped[name] = why
    # descriptions for concepts registered earlier without one (idempotent: only when they differ)
    for name, desc in descriptions.items():
        if memory.exists(name) and name not in report.added:
            try:
                if (memory.get(name).description or "") != desc:
                    memory.update(name, description=desc)
                    report.described.append(name)
            except SLCError as exc:
                report.failed[name] = str(exc)
    return report


__all__ = ["ConceptImport", "YOLLAVA_FAMILY", "eval_tenant", "import_benchmark_concepts"]
