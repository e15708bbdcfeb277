"""Where an annotation's image path is on this machine, and why it is not when it is not.

Why suffix matching: annotation files name images relative to wherever their authors kept the data
(``./yollava-data/test/bo/0.png``, RAP's older ``benchmark_data/yollava-data/...``, MC-LLaVA's absolute
``/workspace/data/MulBench/two_concept/...``). Users pass ``--root`` as the folder that holds the data; we
look for the path under the root and then for ever shorter tails of it (at least folder + file, so a bare
``0.png`` never matches the wrong concept's image). When nothing at all is found, :func:`explain_missing`
says which paths were tried and what the root holds, because "0 items scored" alone is no diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath


def normalize_image_path(path: str) -> str:
    """``./yollava-data/test/bo/0.png`` -> ``yollava-data/test/bo/0.png`` (the form of file-list.txt)."""
    p = path.replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p


def _tails(rel: str) -> list[PurePosixPath]:
    """``a/b/c/d.png`` -> ``a/b/c/d.png``, ``b/c/d.png``, ``c/d.png`` (never the bare file name)."""
    parts = [p for p in PurePosixPath(rel).parts if p not in ("/", "")]
    if len(parts) <= 1:
        return [PurePosixPath(*parts)] if parts else []
    return [PurePosixPath(*parts[i:]) for i in range(len(parts) - 1)]


def resolve_image(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names under ``root``: the path itself, else its longest tail that exists there."""
    root = Path(root)
    for tail in _tails(rel):
        candidate = root / tail
        if candidate.is_file():
            return candidate
    return None


def explain_missing(root: Path, missing: Sequence[str], referenced: int) -> str:
    """Why none of ``referenced`` images was found: the first path as written, where it was looked for, and
    what ``root`` holds (the usual mistake is a root one folder too high or too low)."""
    root = Path(root)
    first = missing[0]
    tried = ", ".join(str(root / t) for t in _tails(first)[:3])
    if root.is_dir():
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
        holds = ", ".join(entries[:8]) + (" ..." if len(entries) > 8 else "") if entries else "nothing"
    else:
        holds = "nothing: it is not a folder"
    return (f"none of the {referenced} images the annotation names was found under --root {root}: "
            f"e.g. {first!r} (looked for {tried}); {root} holds {holds}. Pass as --root the folder that "
            f"contains the file's top folder ({_tails(first)[0].parts[0]!r} or one of its sub-folders).")


__all__ = ["explain_missing", "normalize_image_path", "resolve_image"]
