"""LangSmith for the SLC graph: run config (names, tags, metadata) and keeping personal images out of traces.

Why our own tracer: LangSmith is switched on by its standard variables (LANGSMITH_TRACING,
LANGSMITH_API_KEY, LANGSMITH_ENDPOINT, LANGSMITH_PROJECT) or by ``settings.tracing.enabled``. When it is
on we hand LangChain a ``LangChainTracer`` whose ``Client`` has ``hide_inputs``/``hide_outputs`` hooks
that replace every image data URL (and any other long base64 blob) by a placeholder, so a user's photo
never leaves the machine in a trace (``settings.tracing.redact_images``, default on). LangChain then adds
no second, unredacted tracer (it only adds one when none is present). Graph state holds content hashes
only, once the recall node has stored the turn's photo; before that a photo sent as bytes travels in the
input as a data URL, and the large-VLM calls carry the photo: those are the places images could appear.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from slc.agent.settings import Settings, get_settings
from slc.graphs.context import Context, RunOptions

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler
    from langsmith import Client

PLACEHOLDER = "<image redacted by slc>"
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+")
_LONG_B64 = re.compile(r"^[A-Za-z0-9+/=\s]{256,}$")

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[bool, str | None, str | None], Client] = {}


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with image data URLs and long base64 strings replaced by a placeholder.

    Dataclasses and pydantic models (the graph state a node run gets as input, messages) are read as the
    dicts LangSmith would send: a turn's input may carry its photo as a data URL until recall stores it.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: redact(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, BaseModel):
        return redact(obj.model_dump())
    if isinstance(obj, str):
        if "base64," in obj:
            obj = _DATA_URL.sub(PLACEHOLDER, obj)
        return PLACEHOLDER if _LONG_B64.match(obj) else obj
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, (bytes, bytearray)):
        return PLACEHOLDER
    if type(obj).__module__.startswith("PIL."):
        return PLACEHOLDER
    return obj


def tracing_enabled(settings: Settings) -> bool:
    from langsmith import utils as ls_utils

    return bool(settings.tracing.enabled or ls_utils.tracing_is_enabled())


def langsmith_client(redact_images: bool) -> Client:
    """One ``langsmith.Client`` per process and redaction mode (endpoint/key from the standard env vars)."""
    from langsmith import Client

    key = (redact_images, os.environ.get("LANGSMITH_ENDPOINT"), os.environ.get("LANGSMITH_API_KEY"))
    with _LOCK:
        if key not in _CLIENTS:
            hooks = {"hide_inputs": redact, "hide_outputs": redact} if redact_images else {}
            _CLIENTS[key] = Client(**hooks)
        return _CLIENTS[key]


def reset_clients() -> None:
    """Flush and forget cached clients (tests pointing LANGSMITH_ENDPOINT elsewhere)."""
    with _LOCK:
        for c in _CLIENTS.values():
            try:
                c.flush()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
        _CLIENTS.clear()


def tracing_callbacks(settings: Settings, *, redact_images: bool) -> list[BaseCallbackHandler]:
    """``[LangChainTracer(redacting client)]`` when tracing is on, else ``[]``."""
    if not tracing_enabled(settings):
        return []
    from langchain_core.tracers.langchain import LangChainTracer

    project = os.environ.get("LANGSMITH_PROJECT") or settings.tracing.project
    return [LangChainTracer(client=langsmith_client(redact_images), project_name=project)]


def run_config(
    thread_id: str | None, context: Context | None = None, settings: Settings | None = None, *, visual: bool = False
) -> dict[str, Any]:
    """The RunnableConfig of one turn: thread, run name, tags and metadata that make a trace readable.

    ``settings``: those of the graph's service factory (default :func:`get_settings`, as the module graph's).
    """
    settings = settings or get_settings()
    opts = RunOptions.resolve(context, settings)
    cfg: dict[str, Any] = {
        "run_name": "slc",
        "tags": ["slc", "visual" if visual else "text-only", f"tenant:{opts.tenant}"],
        "metadata": {
            "tenant": opts.tenant,
            "reflection_rounds": opts.reflection_rounds,
            "redact_images": opts.redact_images,
        },
        "callbacks": tracing_callbacks(settings, redact_images=opts.redact_images),
    }
    if thread_id:
        cfg["configurable"] = {"thread_id": thread_id}
        cfg["metadata"]["thread_id"] = thread_id
    return cfg


__all__ = ["PLACEHOLDER", "langsmith_client", "redact", "reset_clients", "run_config", "tracing_callbacks", "tracing_enabled"]
