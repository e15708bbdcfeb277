"""The `slc` command line: the sub-commands of every capability, mounted on one typer app.

Each command lives in its own module of this package (``slc ask`` in :mod:`slc.cli.ask`, ``slc concept``
in :mod:`slc.cli.concept`...); this module only assembles them. ``slc --help`` stays fast because the
command modules import heavy libraries (torch, transformers, chromadb) inside the commands, never at
module import (tests/foundation/test_package.py checks it).
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from slc.agent import __version__
from slc.cli.ask import ask
from slc.cli.chat import chat
from slc.cli.concept import app as concept_app
from slc.cli.console import set_verbose
from slc.cli.data import app as data_app
from slc.cli.demo import demo
from slc.cli.eval import app as eval_app
from slc.cli.noise import library_noise
from slc.cli.scan import scan
from slc.cli.train import app as train_app

app = typer.Typer(
    name="slc",
    help="slc-agent: personalize any large VLM with your own concepts (SLC + Concept-as-Tree).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"slc-agent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Log what each step does, and show the libraries' own bars and warnings."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_verbose(verbose)  # one error handler for every command: tracebacks only under -v
    library_noise(verbose)


app.add_typer(concept_app, name="concept")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
for name, command in (("ask", ask), ("chat", chat), ("demo", demo), ("scan", scan)):
    app.command(name=name)(command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
