"""LangSmith for the SLC graph: run config (names, tags, metadata) and keeping personal images out of traces.

Why our own tracer: LangSmith is switched on by its standard variables (LANGSMITH_TRACING,
LANGSMITH_API_KEY, LANGSMITH_ENDPOINT, LANGSMITH_PROJECT) or by ``settings.tracing.enabled``. When it is
on we hand LangChain a ``LangChainTracer`` whose ``Client`` has ``hide_inputs``/``hide_outputs`` hooks
that replace every image data URL (and any other long base64 blob) by a placeholder, so a user's photo
never leaves the machine in a trace (``settings.tracing.redact_images``, default on). LangChain then adds
no second, unredacted tracer (it only adds one when none is present). Graph state never holds image
bytes (content hashes only), so the large-VLM calls are the only place images could appear.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from slc.graphs.context import Context

PLACEHOLDER = "<image redacted by slc>"
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+")
_LONG_B64 = re.compile(r"^[A-Za-z0-9+/=\s]{256,}$")

_LOCK = threading.Lock()
_CLIENTS: dict[tuple, Any] = {}


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with image data URLs and long base64 strings replaced by a placeholder."""
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


def tracing_enabled(ctx: Context) -> bool:
    from langsmith import utils as ls_utils

    return bool(ctx.get_settings().tracing.enabled or ls_utils.tracing_is_enabled())


def langsmith_client(redact_images: bool) -> Any:
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


def tracing_callbacks(ctx: Context) -> list[Any]:
    """``[LangChainTracer(redacting client)]`` when tracing is on, else ``[]``."""
    if not tracing_enabled(ctx):
        return []
    from langchain_core.tracers.langchain import LangChainTracer

    project = os.environ.get("LANGSMITH_PROJECT") or ctx.get_settings().tracing.project
    return [LangChainTracer(client=langsmith_client(ctx.redact), project_name=project)]


def run_config(thread_id: str | None, ctx: Context, *, question: str = "", visual: bool = False) -> dict[str, Any]:
    """The RunnableConfig of one turn: thread, run name, tags and metadata that make a trace readable."""
    cfg: dict[str, Any] = {
        "run_name": "slc",
        "tags": ["slc", "visual" if visual else "text-only", f"tenant:{ctx.tenant_name}"],
        "metadata": {
            "tenant": ctx.tenant_name,
            "reflection_rounds": ctx.rounds,
            "redact_images": ctx.redact,
        },
        "callbacks": tracing_callbacks(ctx),
    }
    if thread_id:
        cfg["configurable"] = {"thread_id": thread_id}
        cfg["metadata"]["thread_id"] = thread_id
    return cfg


__all__ = ["PLACEHOLDER", "langsmith_client", "redact", "reset_clients", "run_config", "tracing_callbacks", "tracing_enabled"]
