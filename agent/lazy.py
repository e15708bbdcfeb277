"""Lazy re-exports for package ``__init__`` files (PEP 562).

Why: ``import slc.memory`` (or graphs, tools, cat, testing) must not pull torch, transformers or chromadb
into processes that only want a settings object or a CLI ``--help``; the names still import from the
package as users expect (``from slc.memory import ConceptMemory``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first access of ``name``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__all__ = ["lazy_exports"]
