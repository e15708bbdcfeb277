"""``slc scan PHOTOS... --concept NAME``: which photos show a concept (the small VLM alone, batched).

Errors are handled as in every command (:func:`slc.cli.console.cli_errors`); an unreadable photo is a
row with its error, not the end of the scan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from slc.agent.errors import SLCError
from slc.cli.ask import IMAGE_SUFFIXES
from slc.cli.console import cli_errors, table
from slc.cli.options import SmallOpt, TenantOpt, checked_services


def _expand(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:  # a mistyped folder must not look like a scan that found nothing
        raise SLCError(f"No such file or folder: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


@cli_errors
def scan(
    images: List[Path] = typer.Argument(..., help="Photos and/or folders of photos."),
    concept: str = typer.Option(..., "--concept", "-c", help="The concept to look for, e.g. bo."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Photos per forward pass (default settings.small.batch_size)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
    small_model: Optional[str] = SmallOpt,
    tenant: Optional[str] = TenantOpt,
) -> None:
    """Which of these photos show <concept>? (small VLM only, batched, with a progress bar)."""
    from rich.console import Console

    from slc.tools.personalize import MemoryConceptResolver

    services = checked_services(small_model=small_model, tenant=tenant, large=False)
    files = _expand(list(images))
    if not files:
        raise SLCError("No images given: pass photo files or folders that contain photos.")
    memory = services.memory()
    memory.get(concept)  # UnknownConceptError with close names, before the model loads
    small = services.small_vlm()
    query = MemoryConceptResolver(memory, small.bank, with_reference_images=small.protocol.uses_references)(concept)
    rows = small.scan([str(f) for f in files], query, batch_size=batch_size, progress=True)
    if as_json:
        for f, d in zip(files, rows):
            typer.echo(json.dumps({"image": str(f), **d.model_dump(mode="json", exclude={"raw_output"})}))
        return
    console = Console()
    console.print(table(f"<{query.name}> in {len(files)} photo(s)", ("image", "status", "confidence", "location", "note"),
                        ((str(f), d.status, f"{d.confidence:.2f}", d.location_absolute or "", d.error or "")
                         for f, d in zip(files, rows))))
    hits = sum(d.status == "present" for d in rows)
    bad = sum(d.error is not None for d in rows)
    console.print(f"{hits} of {len(files)} photo(s) show <{query.name}>" + (f"; {bad} unreadable" if bad else ""))
