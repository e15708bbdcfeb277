"""``slc concept``: register, list, show, remove, import personal concepts, and purge a tenant.

Heavy libraries (chromadb, torch, transformers) are imported inside the commands so ``slc --help`` stays
fast. Every slc error is printed as one line and exits with code 1, never a traceback. The memory comes
from the service factory, like the graph's. ``import`` shows a labelled progress bar, concept by concept.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from slc.agent.errors import SLCError
from slc.cli.console import cli_errors, progress, table
from slc.cli.options import TenantOpt
from slc.graphs.services import ServiceFactory

if TYPE_CHECKING:
    from slc.memory.importers.common import ImportPlan, ImportReport
    from slc.memory.store import ConceptMemory

app = typer.Typer(help="Your personal concepts (names, reference images, descriptions).", no_args_is_help=True)


def _memory(tenant: Optional[str]) -> ConceptMemory:
    return ServiceFactory().memory(tenant)


def _register_with_progress(memory: ConceptMemory, plan: ImportPlan, **options: Any) -> ImportReport:
    """``register`` one concept at a time under a labelled bar (a benchmark's concepts take minutes to embed);
    each concept stays all-or-nothing, as ``register`` makes it."""
    from slc.memory.importers import register
    from slc.memory.importers.common import ImportReport

    report = ImportReport(missing_images=plan.missing_images, warnings=list(plan.warnings))
    with progress(f"importing {plan.format} concepts", len(plan.concepts)) as advance:
        for spec in plan.concepts:
            part = register(memory, plan.model_copy(update={"concepts": [spec], "warnings": []}), **options)
            report.added += part.added
            report.updated += part.updated
            report.skipped.update(part.skipped)
            report.failed.update(part.failed)
            advance(1)
    return report


@app.command("add")
@cli_errors
def add(
    name: str = typer.Argument(..., help="Concept name, e.g. bo or '<bo>'."),
    images: List[Path] = typer.Argument(..., help="One or more reference images."),
    description: str = typer.Option("", "--description", "-d", help="What it is, in words."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="Permanent category, e.g. dog."),
    tenant: Optional[str] = TenantOpt,
) -> None:
    """Register a concept from reference images (all or nothing); with a small VLM configured, its identity
    (category and attributes) is read off the photos."""
    from slc.graphs.registration import register_concept

    concept = register_concept(ServiceFactory(), name, list(images), tenant=tenant, description=description,
                               category=category)
    typer.echo(f"Added <{concept.name}> with {len(concept.images)} image(s) (id {concept.id}).")


@app.command("list")
@cli_errors
def list_(tenant: Optional[str] = TenantOpt) -> None:
    """List the concepts of a tenant."""
    from rich.console import Console

    concepts = _memory(tenant).list()
    if not concepts:
        typer.echo("No concepts yet. Add one with: slc concept add NAME IMAGE...")
        return
    short = lambda text: text if len(text) <= 60 else text[:57] + "..."  # noqa: E731
    Console().print(table(f"{len(concepts)} concept(s)", ("name", "category", "images", "description"),
                          ((c.token, c.category or "", str(len(c.images)), short(c.description)) for c in concepts)))


@app.command("show")
@cli_errors
def show(name: str, tenant: Optional[str] = TenantOpt) -> None:
    """Show one concept: description, identity, images."""
    from rich.console import Console

    c = _memory(tenant).get(name)
    console = Console()
    console.print(f"[bold]{c.token}[/bold]  id={c.id}  tenant={c.tenant}")
    if c.description:
        console.print(f"description: {c.description}")
    if c.identity:
        console.print(f"category: {c.identity.category}")
        for k, v in c.identity.attributes.items():
            console.print(f"  {k}: {v}")
    if c.adapter:
        console.print(f"adapter: {c.adapter}")
    console.print(f"concept tree: {'yes' if c.tree else 'no'}")
    console.print(table("reference images", ("sha256", "size", "path"),
                        ((i.sha256[:12], f"{i.width}x{i.height}", i.path) for i in c.images)))


@app.command("remove")
@cli_errors
def remove(name: str, tenant: Optional[str] = TenantOpt) -> None:
    """Delete a concept with its embeddings and stored images."""
    mem = _memory(tenant)
    concept = mem.get(name)
    mem.delete(concept.name)
    typer.echo(f"Removed <{concept.name}>.")


@app.command("purge")
@cli_errors
def purge(
    tenant: Optional[str] = TenantOpt,
    threads: bool = typer.Option(False, "--threads", help="Also delete the tenant's chat sessions."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Erase everything slc keeps of a tenant: concepts, reference photos, query photos (and chats with --threads)."""
    from slc.graphs.erasure import erase_tenant

    services = ServiceFactory()
    who = tenant or services.settings.tenant
    what = "concepts, reference photos and query photos" + (" and chat sessions" if threads else "")
    if not yes:
        typer.confirm(f"Erase all {what} of tenant {who!r}? This cannot be undone", abort=True)
    erased = erase_tenant(services, who, threads=threads)
    typer.echo(f"Erased tenant {who!r}: {erased.concepts} concept(s), {erased.query_photos} query photo(s)"
               + (f", {len(erased.threads)} chat session(s)." if threads else "."))


@app.command("import")
@cli_errors
def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="yollava | rap | myvlm | slc_eval"),
    path: Path = typer.Argument(..., help="Dataset folder or annotation file."),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help="Where the images live (rap, slc_eval)."),
    on_exists: str = typer.Option("skip", "--on-exists", help="skip | update | error"),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="At most this many images per concept."),
    tenant: Optional[str] = TenantOpt,
) -> None:
    """Import concepts from a benchmark dataset's own files."""
    from rich.console import Console

    from slc.graphs.registration import identity_reader
    from slc.memory.importers import discover

    if on_exists not in ("skip", "update", "error"):
        raise SLCError("--on-exists must be skip, update or error")
    kwargs = {"images_root": images_root} if images_root and fmt.replace("-", "_") in ("rap", "slc_eval") else {}
    plan = discover(fmt, path, **kwargs)
    services = ServiceFactory()
    memory = services.memory(tenant)
    # with a small VLM configured, each new concept's identity is read off its photos (as `slc concept add`)
    report = _register_with_progress(memory, plan, on_exists=on_exists, max_images=max_images,
                                     identify=identity_reader(services))
    results = (("added", report.added), ("updated", report.updated), ("skipped", list(report.skipped)),
               ("failed", list(report.failed)))
    console = Console()
    console.print(table(f"import {plan.format} from {plan.source}", ("result", "count", "names"),
                        ((label, str(len(names)), ", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))
                         for label, names in results)))
    for name, why in report.failed.items():
        console.print(f"[red]failed[/red] {name}: {why}")
    if report.missing_images:
        console.print(f"[yellow]{len(report.missing_images)} image(s) named but missing on disk[/yellow], e.g. {report.missing_images[0]}")
    for w in report.warnings[:10]:
        console.print(f"[yellow]warning[/yellow] {w}")
    if report.failed:
        raise typer.Exit(1)
