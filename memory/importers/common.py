"""What every importer returns, and the one function that registers it.

Why split "discover" from "register": importers only read a dataset's own files (as they are) and say
what they found, including images the annotation names but the disk lacks; registering is one shared,
all-or-nothing-per-concept loop, so every format gets the same duplicate and bad-image handling.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from slc.agent.errors import SLCError

if TYPE_CHECKING:
    from collections.abc import Callable

    from slc.memory.store import ConceptMemory
    from slc.memory.types import Identity

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ConceptSpec(BaseModel):
    """One concept found in a dataset."""

    name: str
    images: list[Path] = Field(default_factory=list)
    description: str = ""
    category: str | None = None
    missing_images: list[str] = Field(default_factory=list, description="Paths the annotation names but the disk lacks.")


class ImportPlan(BaseModel):
    """Everything an importer found; nothing written yet."""

    format: str
    source: str
    concepts: list[ConceptSpec] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def missing_images(self) -> list[str]:
        return [m for c in self.concepts for m in c.missing_images]


class ImportReport(BaseModel):
    """What registering a plan did, concept by concept."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="name -> why")
    failed: dict[str, str] = Field(default_factory=dict, description="name -> error message")
    missing_images: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (2.png before 10.png)."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]

    def key(p: Path) -> tuple:
        return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)

    return sorted(files, key=key)


def register(
    memory: "ConceptMemory",
    plan: ImportPlan,
    *,
    on_exists: Literal["skip", "update", "error"] = "skip",
    max_images: int | None = None,
    identify: "Callable[[list[Path], str | None], Identity | None] | None" = None,
) -> ImportReport:
    """Register a plan's concepts. Each concept is all-or-nothing; one bad concept never stops the rest.

    ``identify(images, category)``: the identity (category + attributes) read off a NEW concept's photos
    (:func:`slc.graphs.registration.identity_reader`: the small VLM), as ``slc concept add`` does; None keeps
    the plan's own category only. Memory cannot call a model itself, so the caller passes it.

    ``on_exists``: "skip" leaves an existing concept alone, "update" fills in its description/category
    and adds the new images, "error" records it as failed. Concepts without any image on disk can only
    update an existing concept (a new concept needs a reference image) and are otherwise skipped.
    """
    report = ImportReport(missing_images=plan.missing_images, warnings=list(plan.warnings))
    for spec in plan.concepts:
        images = spec.images[:max_images] if max_images else spec.images
        try:
            if memory.exists(spec.name):
                if on_exists == "skip":
                    report.skipped[spec.name] = "already registered"
                    continue
                if on_exists == "error":
                    report.failed[spec.name] = "already registered"
                    continue
                memory.update(spec.name, description=spec.description or None, category=spec.category)
                if images:
                    memory.add_images(spec.name, images)
                report.updated.append(spec.name)
            elif not images:
                report.skipped[spec.name] = "no reference image found on disk"
            else:
                identity = identify(list(images), spec.category) if identify is not None else None
                memory.add(spec.name, images, description=spec.description, category=spec.category, identity=identity)
                report.added.append(spec.name)
        except SLCError as exc:
            report.failed[spec.name] = str(exc)
    return report


__all__ = ["ConceptSpec", "IMAGE_EXTENSIONS", "ImportPlan", "ImportReport", "list_images", "register"]
