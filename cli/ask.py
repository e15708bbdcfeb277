"""``slc ask``, ``slc chat``, ``slc scan`` and ``slc demo``: the product surface over the SLC graph.

Each command is a plain function mounted by :mod:`slc.agent.cli`; heavy libraries are imported inside,
so ``slc --help`` stays fast. Every slc error ends as one line and exit code 1 through
:func:`slc.agent.console.cli_errors` (a traceback only under ``slc -v``).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import List, Optional

import typer

from slc.agent.console import cli_errors, fail

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

SmallOpt = typer.Option(None, "--small-model", help="Small VLM checkpoint (HF id or local folder); default settings.small.model.")
LargeOpt = typer.Option(None, "--large-model", help='Large VLM: "provider:model" (e.g. openai:gpt-4o) or the name served at --base-url.')
BaseUrlOpt = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint of the large VLM (vLLM, Ollama, transformers serve).")
TenantOpt = typer.Option(None, "--tenant", "-t", help="Whose concepts (default: settings.tenant).")


def _context(small_model: str | None, large_model: str | None, base_url: str | None, tenant: str | None):
    """Settings with the flags applied + a graph Context whose large VLM is built (and checked) now."""
    from slc.agent.runtime import build_large, check_small_model, with_overrides
    from slc.graphs.context import Context, Services

    settings = with_overrides(small_model=small_model, large_model=large_model, base_url=base_url, tenant=tenant)
    if settings.small.model:
        check_small_model(settings.small.model)  # ModelNotFoundError now, not after recall
    large = build_large(settings)
    return settings, Context(settings=settings, services=Services(large_vlm=large))


def _check_question(image: str | None, question: str | None) -> tuple[str, str]:
    from slc.agent.errors import SLCError

    if image is not None and question is None and not Path(image).suffix.lower() in IMAGE_SUFFIXES and not Path(image).exists():
        image, question = None, image  # `slc ask "question"`: the image is what is missing
    if not image or not image.strip():
        raise SLCError('No image given: usage `slc ask IMAGE "question"` (for text-only questions use `slc chat`).')
    if not question or not question.strip():
        raise SLCError(f'No question given: usage `slc ask {image} "question"`.')
    return image, question


@cli_errors
def ask(
    image: Optional[str] = typer.Argument(None, help="The photo (a path)."),
    question: Optional[str] = typer.Argument(None, help='The question, e.g. "Is <bo> in this photo?"'),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Session to continue (default: a new one)."),
    small_model: Optional[str] = SmallOpt,
    large_model: Optional[str] = LargeOpt,
    base_url: Optional[str] = BaseUrlOpt,
    tenant: Optional[str] = TenantOpt,
) -> None:
    """Ask about one photo: answer + detection report + reflection verdicts."""
    from slc.agent.console import print_json, print_turn, turn_payload
    from slc.agent.turns import run_turn
    from slc.graphs.sessions import open_graph
    from slc.agent.images import load_image

    image, question = _check_question(image, question)
    load_image(image)  # InvalidImageError naming the file and the reason, before any model loads
    settings, ctx = _context(small_model, large_model, base_url, tenant)
    thread = thread or uuid.uuid4().hex[:12]
    with open_graph(settings) as graph:
        turn = run_turn(graph, question, image, thread_id=thread, context=ctx)
    if as_json:
        print_json(turn_payload(turn.result, thread_id=thread, detections=turn.detections))
        return
    print_turn(turn.result, detections=turn.detections)
    typer.echo(f"session: {thread} (continue with: slc chat --thread {thread})")


CHAT_HELP = """Type a question and press Enter. Attach a photo with `@path/to/photo.jpg question` or a line
`/image PATH` (kept for the next questions; `/image` alone drops it). `/exit` (or end of input) quits."""


@cli_errors
def chat(
    thread: Optional[str] = typer.Option(None, "--thread", help="Session to resume (default: a new one)."),
    small_model: Optional[str] = SmallOpt,
    large_model: Optional[str] = LargeOpt,
    base_url: Optional[str] = BaseUrlOpt,
    tenant: Optional[str] = TenantOpt,
) -> None:
    """Interactive, resumable chat about your concepts and photos (works with piped input)."""
    from rich.console import Console

    from slc.agent.console import print_turn
    from slc.agent.errors import InvalidImageError, SLCError
    from slc.agent.turns import run_turn
    from slc.graphs.sessions import open_graph
    from slc.agent.images import load_image

    console = Console()
    settings, ctx = _context(small_model, large_model, base_url, tenant)
    resumed = thread is not None
    thread = thread or uuid.uuid4().hex[:12]
    interactive = sys.stdin.isatty()
    with open_graph(settings) as graph:
        previous = graph.get_state({"configurable": {"thread_id": thread}}).values.get("messages", [])
        state = f"resumed, {len(previous)} earlier message(s)" if resumed and previous else "new"
        typer.echo(f"session {thread}: {state}  (resume with: slc chat --thread {thread})")
        if interactive:
            console.print(CHAT_HELP)
        image: str | None = None
        while True:
            if interactive:
                console.print("[bold]you>[/bold] ", end="")
            line = sys.stdin.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit"):
                break
            if line == "/help":
                console.print(CHAT_HELP)
                continue
            one_off = None
            if line.startswith("/image"):
                path = line[len("/image"):].strip()
                if not path:
                    image = None
                    console.print("photo dropped")
                    continue
                try:
                    load_image(path)
                except InvalidImageError as exc:
                    typer.secho(f"Error: {exc}", fg=typer.colors.RED)
                    continue
                image = path
                console.print(f"photo attached: {path}")
                continue
            if line.startswith("@"):
                path, _, line = line[1:].partition(" ")
                one_off, line = path, line.strip()
                if not line:
                    typer.secho("Error: no question after the photo path", fg=typer.colors.RED)
                    continue
            try:
                turn = run_turn(graph, line, one_off or image, thread_id=thread, context=ctx)
            except SLCError as exc:  # a bad photo or a missing concept must not end the session
                typer.secho(f"Error: {exc}", fg=typer.colors.RED)
                continue
            print_turn(turn.result, detections=turn.detections, console=console)
    console.print(f"bye (resume with: slc chat --thread {thread})")


def _expand(paths: list[Path]) -> list[Path]:
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
    import json

    from rich.console import Console
    from rich.table import Table

    from slc.agent.adapters import AdapterBank
    from slc.agent.errors import SLCError
    from slc.agent.runtime import build_small, with_overrides
    from slc.memory.store import ConceptMemory
    from slc.tools.personalize import MemoryConceptResolver

    from slc.agent.runtime import check_small_model

    settings = with_overrides(small_model=small_model, tenant=tenant)
    if settings.small.model:
        check_small_model(settings.small.model)
    files = _expand(list(images))
    if not files:
        raise SLCError("No images given: pass photo files or folders that contain photos.")
    memory = ConceptMemory(settings)
    bank = AdapterBank.load(settings.small.adapter_bank) if settings.small.adapter_bank else None
    query = MemoryConceptResolver(memory, bank)(concept)  # UnknownConceptError with close names
    small = build_small(settings)
    rows = small.scan([str(f) for f in files], query, batch_size=batch_size, progress=True)
    if as_json:
        for f, d in zip(files, rows):
            typer.echo(json.dumps({"image": str(f), **d.model_dump(mode="json", exclude={"raw_output"})}))
        return
    table = Table(title=f"<{query.name}> in {len(files)} photo(s)")
    for col in ("image", "status", "confidence", "location", "note"):
        table.add_column(col)
    for f, d in zip(files, rows):
        table.add_row(str(f), d.status, f"{d.confidence:.2f}", d.location_absolute or "", d.error or "")
    console = Console()
    console.print(table)
    hits = sum(d.status == "present" for d in rows)
    bad = sum(d.error is not None for d in rows)
    console.print(f"{hits} of {len(files)} photo(s) show <{query.name}>" + (f"; {bad} unreadable" if bad else ""))


@cli_errors
def demo(
    small_model: Optional[str] = SmallOpt,
    large_model: Optional[str] = LargeOpt,
    base_url: Optional[str] = BaseUrlOpt,
    in_process: bool = typer.Option(False, "--in-process", help="Run the local large model in this process instead of `transformers serve`."),
    demo_dir: Optional[Path] = typer.Option(None, "--dir", help="Where the demo's memory, sessions and trace go (default <data_dir>/demo)."),
) -> None:
    """Offline end-to-end demo: local models, sample concepts, a two-turn session with a reflection loop."""
    from slc.agent.demo import run_demo

    ok = run_demo(small_model=small_model, large_model=large_model, base_url=base_url, in_process=in_process,
                  demo_dir=demo_dir)
    if not ok:
        fail("the demo did not show what it should (see above).")
