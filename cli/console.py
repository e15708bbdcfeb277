"""The one place where an slc error becomes a message and an exit code, and where turn results are printed.

Why one place: every command (``slc ask``, ``slc concept add``, ``slc demo``...) must fail the same way, a
single line a person can act on and exit code 1, with the traceback only under ``slc -v``. Commands wrap
themselves with :func:`cli_errors`; nothing else catches ``SLCError`` for printing.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


_VERBOSE = False


def set_verbose(value: bool) -> None:
    """Called by the root ``slc`` callback with its ``-v`` flag."""
    global _VERBOSE
    _VERBOSE = bool(value)


def verbose() -> bool:
    """True under ``slc -v`` (or, outside the CLI, when the root logger is at INFO)."""
    return _VERBOSE or logging.getLogger().isEnabledFor(logging.INFO)


def fail(message: str) -> None:
    """Print one red ``Error: ...`` line on stderr and exit 1."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def cli_errors(fn: F) -> F:
    """Turn slc's own errors into one line + exit code 1 (a traceback too under ``-v``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from slc.agent.errors import SLCError

        try:
            return fn(*args, **kwargs)
        except SLCError as exc:
            if verbose():
                import traceback

                traceback.print_exc()
            fail(" ".join(str(exc).split()) if "\n" not in str(exc).strip() else str(exc).strip())

    return wrapper  # type: ignore[return-value]


# -- printing turn results ----------------------------------------------------------------------------------


def turn_payload(result: Any, *, thread_id: str | None = None, detections: list[Any] | None = None) -> dict[str, Any]:
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


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def print_turn(result: Any, *, detections: list[Any] | None = None, console: Any = None) -> None:
    """The answer, the detection report (every claim of every round) and the verdicts, as rich tables."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    def table(title: str, columns: tuple[str, ...], rows: Any) -> None:
        t = Table(title=title)
        for col in columns:
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        console.print(t)

    console = console or Console()
    if detections:
        table("small VLM detections (every round)", ("round", "concept", "status", "confidence", "location", "source"),
              ((str(d.round), f"<{d.concept}>", d.status, f"{d.confidence:.2f}", d.location_absolute or "",
                d.status_source or (d.error or d.parse_error or "")) for d in detections))
    if result.verdicts:
        table("large VLM verdicts (reflection)", ("round", "concept", "claim", "verdict", "feedback"),
              ((str(v.round), f"<{v.concept}>", v.claim, v.verdict, v.feedback[:80]) for v in result.verdicts))
    if result.final:
        table("report the answer relied on", ("concept", "present", "verified", "location", "note"),
              ((f"<{f.concept}>", f.present, "yes" if f.verified else "no", f.location_absolute or "", f.note[:80])
               for f in result.final))
    title = "answer (degraded: large VLM unavailable)" if result.degraded else "answer"
    console.print(Panel(result.answer.text, title=title, expand=False))
    for flag in result.flags:
        console.print(f"[yellow]note[/yellow] {flag}")


__all__ = ["cli_errors", "fail", "set_verbose", "print_json", "print_turn", "turn_payload", "verbose"]
