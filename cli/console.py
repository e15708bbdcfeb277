"""The one place where an slc error becomes a message and an exit code, and where results are printed.

Why one place: every command (``slc ask``, ``slc concept add``, ``slc demo``...) must fail the same way, a
single line a person can act on and exit code 1, with the traceback only under ``slc -v``. Commands wrap
themselves with :func:`cli_errors`; nothing else catches ``SLCError`` for printing. Tables of every
command are built by :func:`table`, and every job that counts through items shows :func:`progress` (a
labelled bar on stderr, so ``--json`` output on stdout stays clean), so they look alike.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from slc.agent.errors import SLCError

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from rich.console import Console
    from rich.table import Table

    from slc.agent.detection import Detection
    from slc.graphs.sessions import TurnResult

P = ParamSpec("P")
R = TypeVar("R")

_VERBOSE = False


def set_verbose(value: bool) -> None:
    """Called by the root ``slc`` callback with its ``-v`` flag."""
    global _VERBOSE
    _VERBOSE = bool(value)


def verbose() -> bool:
    """True under ``slc -v`` (or, outside the CLI, when the root logger is at INFO)."""
    return _VERBOSE or logging.getLogger().isEnabledFor(logging.INFO)


def error_line(message: str, *, err: bool = False) -> None:
    """Print one red ``Error: ...`` line; on stdout by default, where ``slc chat`` goes on after it."""
    typer.secho(f"Error: {message}", err=err, fg=typer.colors.RED)


def fail(message: str) -> None:
    """Print one red ``Error: ...`` line on stderr and exit 1."""
    error_line(message, err=True)
    raise typer.Exit(1)


def one_line(exc: SLCError) -> str:
    """The error's message on one line (a message written over several lines on purpose is kept as is)."""
    text = str(exc).strip()
    return text if "\n" in text else " ".join(text.split())


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn slc's own errors into one line + exit code 1 (a traceback too under ``-v``)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SLCError as exc:
            if verbose():
                traceback.print_exc()
            fail(one_line(exc))
            raise  # unreachable: fail() exits

    return wrapper


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> Table:
    """A rich table of strings."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    return t


@contextlib.contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A labelled bar on stderr for a job of ``total`` items; yields ``advance(n)``. On a terminal it moves
    as the job does; elsewhere (a pipe, a log) its final state is printed once when the job ends."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


# -- printing turn results ----------------------------------------------------------------------------------


def turn_payload(result: TurnResult, *, thread_id: str | None = None,
                 detections: list[Detection] | None = None) -> dict[str, Any]:
    """One JSON-able object for a TurnResult (what ``slc ask --json`` prints)."""
    return {
        "thread_id": thread_id,
        "answer": result.answer.model_dump(),
        "detections": [d.model_dump(mode="json", exclude={"raw_output"}) for d in (detections or [])],
        "final": [f.model_dump(mode="json") for f in result.final],
        "verdicts": [v.model_dump(mode="json") for v in result.verdicts],
        "flags": list(result.flags),
        "degraded": result.degraded,
        "large_vlm_calls": result.large_vlm_calls,
        "image": result.image,
    }


def print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def print_turn(result: TurnResult, *, detections: list[Detection] | None = None, console: Console | None = None) -> None:
    """The answer, the detection report (every claim of every round) and the verdicts, as rich tables."""
    from rich.console import Console
    from rich.panel import Panel

    console = console or Console()
    if detections:
        console.print(table(
            "small VLM detections (every round)", ("round", "concept", "status", "confidence", "location", "source"),
            ((str(d.round), f"<{d.concept}>", d.status, f"{d.confidence:.2f}", d.location_absolute or "",
              d.status_source or (d.error or d.parse_error or "")) for d in detections)))
    if result.verdicts:
        console.print(table(
            "large VLM verdicts (reflection)", ("round", "concept", "claim", "verdict", "feedback"),
            ((str(v.round), f"<{v.concept}>", v.claim, v.verdict, v.feedback[:80]) for v in result.verdicts)))
    if result.final:
        console.print(table(
            "report the answer relied on", ("concept", "present", "verified", "location", "note"),
            ((f"<{f.concept}>", f.present, "yes" if f.verified else "no", f.location_absolute or "", f.note[:80])
             for f in result.final)))
    title = "answer (degraded: large VLM unavailable)" if result.degraded else "answer"
    console.print(Panel(result.answer.text, title=title, expand=False))
    for flag in result.flags:
        console.print(f"[yellow]note[/yellow] {flag}")


def print_transcript(messages: list[BaseMessage], *, console: Console | None = None) -> None:
    """A thread's transcript, one line per message (``you>`` / ``slc>``; a question's photo by its sha256)."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    for m in messages:
        text = m.content if isinstance(m.content, str) else " ".join(
            p.get("text", "") for p in m.content if isinstance(p, dict))
        photo = m.additional_kwargs.get("image")
        who = "you" if m.type == "human" else "slc"
        console.print(f"[bold]{who}>[/bold] {escape(text)}" + (f"  [dim](photo {photo[:12]})[/dim]" if photo else ""))


__all__ = ["cli_errors", "error_line", "fail", "one_line", "print_json", "print_transcript", "print_turn", "progress",
           "set_verbose", "table",
           "turn_payload", "verbose"]
