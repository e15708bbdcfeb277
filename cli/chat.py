"""``slc chat``: an interactive, resumable session about your concepts and photos (works with piped input).

A bad photo, a missing concept, a misconfigured large VLM or a store that went down mid-turn (Chroma,
Postgres) is printed as one error line and the session goes on; only flags and
models that cannot work end it (through :func:`slc.cli.console.cli_errors`), and so does a ``--thread``
that belongs to another tenant: it is refused before anything of it is read.
"""

from __future__ import annotations

import sys
import traceback
import uuid
from typing import Optional

import typer

from slc.agent.errors import SLCError
from slc.cli.console import cli_errors, error_line, one_line, print_transcript, print_turn, verbose
from slc.cli.options import BaseUrlOpt, LargeOpt, SmallOpt, TenantOpt, checked_services

CHAT_HELP = """Type a question and press Enter. Attach a photo with `@path/to/photo.jpg question` or a line
`/image PATH` (kept for the next questions; `/image` alone drops it). `/exit` (or end of input) quits."""


@cli_errors
def chat(
    thread: Optional[str] = typer.Option(None, "--thread", help="Session to resume (default: a new one)."),
    small_model: Optional[str] = SmallOpt,
    large_model: Optional[str] = LargeOpt,
    base_url: Optional[str] = BaseUrlOpt,
    tenant: Optional[str] = TenantOpt,
    history: bool = typer.Option(False, "--history", help="Print the thread's whole transcript first (every turn, "
                                 "also those no longer in its checkpoint)."),
) -> None:
    """Interactive, resumable chat about your concepts and photos (works with piped input)."""
    from rich.console import Console

    from slc.agent.images import load_image
    from slc.graphs.sessions import open_graph, thread_history
    from slc.graphs.turns import run_turn

    console = Console()
    services = checked_services(small_model=small_model, large_model=large_model, base_url=base_url, tenant=tenant)
    resumed = thread is not None
    thread = thread or uuid.uuid4().hex[:12]
    interactive = sys.stdin.isatty()
    with open_graph(services=services) as graph:
        previous = thread_history(graph, thread, settings=services.settings)  # another tenant's: refused
        state = f"resumed, {len(previous)} earlier message(s)" if resumed and previous else "new"
        typer.echo(f"session {thread}: {state}  (resume with: slc chat --thread {thread})")
        if history:
            print_transcript(previous, console=console)
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
                except SLCError as exc:
                    error_line(str(exc))
                    continue
                image = path
                console.print(f"photo attached: {path}")
                continue
            if line.startswith("@"):
                path, _, line = line[1:].partition(" ")
                one_off, line = path, line.strip()
                if not line:
                    error_line("no question after the photo path")
                    continue
            try:
                turn = run_turn(graph, line, one_off or image, thread_id=thread, settings=services.settings)
            except SLCError as exc:  # a bad photo, a missing concept, a large VLM misconfigured: next question
                error_line(one_line(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a store down mid-turn (Chroma, Postgres) must not end it either
                if verbose():
                    traceback.print_exc()
                error_line(f"this turn failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                           "the session is kept, ask again when the service is back")
                continue
            print_turn(turn.result, detections=turn.detections, console=console)
    console.print(f"bye (resume with: slc chat --thread {thread})")
