"""``slc ask IMAGE "question"``: one turn of the SLC graph about one photo: answer, detections, verdicts.

Every slc error ends as one line and exit code 1 through :func:`slc.cli.console.cli_errors` (a traceback
only under ``slc -v``); heavy libraries are imported inside, so ``slc --help`` stays fast.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

import typer

from slc.agent.errors import SLCError, check_question
from slc.agent.settings import get_settings
from slc.cli.console import cli_errors, print_json, print_turn, turn_payload
from slc.cli.options import BaseUrlOpt, LargeOpt, SmallOpt, TenantOpt, checked_services

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _check_question(image: str | None, question: str | None) -> tuple[str, str]:
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
    from slc.agent.images import load_image
    from slc.graphs.sessions import open_graph
    from slc.graphs.turns import run_turn

    image, question = _check_question(image, question)
    check_question(question, get_settings().max_question_chars)  # before any photo is read or model loads
    load_image(image)  # InvalidImageError naming the file and the reason, before any model loads
    services = checked_services(small_model=small_model, large_model=large_model, base_url=base_url, tenant=tenant)
    thread = thread or uuid.uuid4().hex[:12]
    with open_graph(services=services) as graph:
        turn = run_turn(graph, question, image, thread_id=thread, settings=services.settings)
    if as_json:
        print_json(turn_payload(turn.result, thread_id=thread, detections=turn.detections))
        return
    print_turn(turn.result, detections=turn.detections)
    typer.echo(f"session: {thread} (continue with: slc chat --thread {thread})")
