"""The `slc` command line.

Each capability owns its sub-commands in its own package (``slc.memory.cli``, ``slc.cat.cli``, ...);
this module only assembles them, so ``slc --help`` stays fast: sub-command modules import heavy
libraries (torch, transformers, chromadb) inside the commands, never at module import.
"""

from __future__ import annotations

import importlib
import logging
from typing import Optional

import typer

from slc.agent import __version__

app = typer.Typer(
    name="slc",
    help="slc-agent: personalize any large VLM with your own concepts (SLC + Concept-as-Tree).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# (module, attribute, name) of sub-command groups; a group whose module is absent is simply not offered.
SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("slc.memory.cli", "app", "concept"),
    ("slc.cat.cli", "app", "data"),
    ("slc.training.cli", "app", "train"),
    ("slc.evals.cli", "app", "eval"),
]
# (module, function, name) of single commands.
COMMANDS: list[tuple[str, str, str]] = [
    ("slc.agent.commands", "ask", "ask"),
    ("slc.agent.commands", "chat", "chat"),
    ("slc.agent.commands", "demo", "demo"),
    ("slc.agent.commands", "scan", "scan"),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"slc-agent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what each step does."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from slc.agent.console import set_verbose

    set_verbose(verbose)  # one error handler for every command: tracebacks only under -v


def _optional_module(module_name: str):
    """The module, or None when that module (not one of its own imports) does not exist."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None


def _mount() -> None:
    for module_name, attr, name in SUBCOMMANDS:
        module = _optional_module(module_name)
        if module is not None:
            app.add_typer(getattr(module, attr), name=name)
    for module_name, attr, name in COMMANDS:
        module = _optional_module(module_name)
        if module is not None and hasattr(module, attr):
            app.command(name=name)(getattr(module, attr))


_mount()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
