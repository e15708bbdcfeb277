"""slc.memory.importers: read benchmark datasets' own files into :class:`ConceptMemory`.

``discover(path)`` in each format module returns an :class:`ImportPlan` (nothing written);
:func:`register` writes it, concept by concept, all-or-nothing each. :func:`import_dataset` does both.
Formats: ``yollava`` (train/<concept>/*.png), ``rap`` (database.json), ``myvlm`` (<concept>/*.jpg +
captions.json or captions_augmented.json), ``slc_eval`` (descriptions inside the SLC eval files' system prompts).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slc.agent.errors import SLCError
from slc.memory.importers.common import ConceptSpec, ImportPlan, ImportReport, register

if TYPE_CHECKING:
    from slc.memory.store import ConceptMemory

FORMATS = ("yollava", "rap", "myvlm", "slc_eval")


def discover(fmt: str, path: str | Path, **kwargs: Any) -> ImportPlan:
    key = fmt.lower().replace("-", "_")
    if key not in FORMATS:
        raise SLCError(f"Unknown import format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return importlib.import_module(f"slc.memory.importers.{key}").discover(path, **kwargs)


def import_dataset(memory: "ConceptMemory", fmt: str, path: str | Path, *, on_exists: str = "skip",
                   max_images: int | None = None, identify: Any = None, **kwargs: Any) -> ImportReport:
    """``discover`` + ``register`` (``identify``: see :func:`register`, e.g.
    ``slc.graphs.registration.identity_reader(services)`` so each new concept's identity is read off its photos)."""
    return register(memory, discover(fmt, path, **kwargs), on_exists=on_exists, max_images=max_images,  # type: ignore[arg-type]
                    identify=identify)


__all__ = ["FORMATS", "ConceptSpec", "ImportPlan", "ImportReport", "discover", "import_dataset", "register"]
