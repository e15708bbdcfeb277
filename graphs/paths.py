"""Which local files a caller that is not the machine's user may name by path: the one confinement rule.

Why: a LangChain tool's arguments are written by a host agent's model, and a served graph's input by any
client; both run in a process that can read every tenant's stored photos and sessions. So a path from
them is read only when it lies under one of ``settings.privacy.photo_roots`` and never inside slc's data
folders, after symlinks are resolved. The machine's own user (the CLI, the Python API given a
:class:`pathlib.Path`) reads their files without this rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from slc.agent.errors import InvalidImageError
from slc.agent.settings import Settings


class PathNotAllowedError(InvalidImageError):
    """A path input outside the allowed folders (or inside slc's own data)."""


def _inside(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder.expanduser().resolve())


def allowed_path(ref: str | os.PathLike[str], settings: Settings) -> Path:
    """The real path ``ref`` names, when a tool or a served graph may read it; else PathNotAllowedError."""
    real = Path(ref).expanduser().resolve()
    if any(_inside(real, own) for own in (settings.data_dir, settings.chroma_path)):
        raise PathNotAllowedError(
            f"Photo path {ref} is not allowed: it is inside slc's data folder, which holds every user's stored "
            "photos; send the photo itself instead")
    if not any(_inside(real, root) for root in settings.privacy.photo_roots):
        roots = ", ".join(str(r) for r in settings.privacy.photo_roots) or "none"
        raise PathNotAllowedError(
            f"Photo path {ref} is not allowed: it is outside the folders this agent may read (settings "
            f"privacy.photo_roots / SLC_PRIVACY__PHOTO_ROOTS: {roots}); send the photo itself or put it in one of them")
    return real


__all__ = ["PathNotAllowedError", "allowed_path"]
