"""LangSmith for the SLC graph: run config (names, tags, metadata) and keeping photos and paths out of traces.

Why here and how: every run of the graph passes :class:`~slc.graphs.guard.GuardedGraph`, which hands
LangChain the callbacks of :func:`private_callbacks`: every LangSmith tracer among them (ours, the one
LangChain adds from LANGSMITH_TRACING, a host agent's own, LangGraph Server's) is replaced by a twin that
shares its run tree (same project, same parent runs) but posts through a ``langsmith.Client`` whose
``hide_inputs``/``hide_outputs``/``hide_metadata`` hooks are :func:`redact`. So what the graph's runs post
never holds an image (data URLs, base64 blobs, bytes, PIL images) nor a local path (reference photos,
query photos, the caller's files: an image is named by its sha256), whoever attached the tracer, unless
the run's redaction is off (``Context.redact_images`` / ``settings.tracing.redact_images``). LangSmith
is switched on by its standard variables (LANGSMITH_TRACING, LANGSMITH_API_KEY, LANGSMITH_ENDPOINT,
LANGSMITH_PROJECT) or by ``settings.tracing.enabled``.
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
    from langchain_core.callbacks import BaseCallbackHandler, Callbacks
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

PLACEHOLDER = "<image redacted by slc>"
PATH_PLACEHOLDER = "<path redacted by slc>"
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+")
_LONG_B64 = re.compile(r"^[A-Za-z0-9+/=\s]{256,}$")
#: An absolute local path (POSIX, ``~/``, ``file://`` or Windows) of two or more parts, alone or inside text;
#: not the path part of a URL (after ``host:port``) and not a fraction or a date (after a word character).
_PATH = re.compile(r"""(?<![\w.:/\\~-])(?:file://)?(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\"'<>|*?]+[/\\])+[^\s/\\"'<>|*?]*""")
#: A content-addressed image file: the stem is the sha256 of the stored bytes.
_SHA_FILE = re.compile(r"([0-9a-f]{64})(?:\.[A-Za-z0-9]+)?$")

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[bool, str | None, str | None], Client] = {}
_REDACTING: set[int] = set()  # id() of the clients above that redact


def _path_name(match: re.Match[str]) -> str:
    sha = _SHA_FILE.search(match.group(0))
    return f"image:sha256:{sha.group(1)}" if sha else PATH_PLACEHOLDER


def redact(obj: Any) -> Any:
    """A copy of ``obj`` without images and local paths: image data URLs, long base64 strings, bytes and PIL
    images become a placeholder; an absolute path becomes ``image:sha256:<hash>`` when it names a
    content-addressed image file (reference and query photos), else a placeholder.

    Dataclasses and pydantic models (the graph state a node run gets as input, messages) are read as the
    dicts LangSmith would send."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: redact(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, BaseModel):
        return redact(obj.model_dump())
    if isinstance(obj, str):
        if "base64," in obj:
            obj = _DATA_URL.sub(PLACEHOLDER, obj)
        if _LONG_B64.match(obj):
            return PLACEHOLDER
        return _PATH.sub(_path_name, obj) if ("/" in obj or "\\" in obj) else obj
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [redact(v) for v in obj] if isinstance(obj, (set, frozenset)) else type(obj)(redact(v) for v in obj)
    if isinstance(obj, (bytes, bytearray)):
        return PLACEHOLDER
    if type(obj).__module__.startswith("PIL."):
        return PLACEHOLDER
    if isinstance(obj, os.PathLike):
        return _PATH.sub(_path_name, os.fspath(obj))
    return obj


def tracing_enabled(settings: Settings) -> bool:
    """LangSmith tracing is on: by its variables, an enclosing ``tracing_context``/``tracing_v2_enabled``, or settings."""
    from langchain_core.tracers.context import tracing_v2_callback_var
    from langsmith import utils as ls_utils

    return bool(settings.tracing.enabled or ls_utils.tracing_is_enabled() or tracing_v2_callback_var.get() is not None)


def langsmith_client(redact_images: bool, *, api_url: str | None = None, api_key: str | None = None) -> Client:
    """One ``langsmith.Client`` per process, redaction mode and destination (default: the standard env vars)."""
    from langsmith import Client

    url = api_url or os.environ.get("LANGSMITH_ENDPOINT")
    key = api_key or os.environ.get("LANGSMITH_API_KEY")
    with _LOCK:
        if (redact_images, url, key) not in _CLIENTS:
            hooks = {"hide_inputs": redact, "hide_outputs": redact, "hide_metadata": redact} if redact_images else {}
            client = Client(api_url=api_url, api_key=api_key, **hooks)
            _CLIENTS[(redact_images, url, key)] = client
            if redact_images:
                _REDACTING.add(id(client))
        return _CLIENTS[(redact_images, url, key)]


def reset_clients() -> None:
    """Flush and forget cached clients (tests pointing LANGSMITH_ENDPOINT elsewhere)."""
    with _LOCK:
        for c in _CLIENTS.values():
            try:
                c.flush()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
        _CLIENTS.clear()
        _REDACTING.clear()


def _private_twin(tracer: LangChainTracer) -> LangChainTracer:
    """``tracer`` posting through a redacting client to the same place, sharing its run tree."""
    if id(tracer.client) in _REDACTING:
        return tracer
    twin = tracer.copy_with_metadata_defaults()  # same project, tags, metadata, run map and order map
    twin.client = langsmith_client(True, api_url=tracer.client.api_url, api_key=tracer.client.api_key)
    return twin


def private_callbacks(callbacks: Callbacks, settings: Settings, *, redact_images: bool) -> Callbacks:
    """``callbacks`` as a run of the graph must use them: with ``redact_images``, every LangSmith tracer in
    them becomes its redacting twin; and when tracing is on but none is there, one of ours is added, so
    LangChain adds no tracer of its own (it only adds one when none is present)."""
    from langchain_core.callbacks import BaseCallbackManager
    from langchain_core.tracers.context import tracing_v2_callback_var
    from langchain_core.tracers.langchain import LangChainTracer

    twins: dict[int, BaseCallbackHandler] = {}

    def private(handler: BaseCallbackHandler) -> BaseCallbackHandler:
        if not redact_images or not isinstance(handler, LangChainTracer):
            return handler
        return twins.setdefault(id(handler), _private_twin(handler))

    handlers: list[BaseCallbackHandler]
    if isinstance(callbacks, BaseCallbackManager):
        out: Callbacks = callbacks.copy()
        out.handlers = [private(h) for h in out.handlers]
        out.inheritable_handlers = [private(h) for h in out.inheritable_handlers]
        handlers = out.handlers
    else:
        out = handlers = [private(h) for h in callbacks or []]
    if tracing_enabled(settings) and not any(isinstance(h, LangChainTracer) for h in handlers):
        enclosing = tracing_v2_callback_var.get()  # a `with tracing_v2_enabled(...)` around the run
        if enclosing is not None:
            tracer = private(enclosing)
        else:
            project = os.environ.get("LANGSMITH_PROJECT") or settings.tracing.project
            tracer = LangChainTracer(client=langsmith_client(redact_images), project_name=project)
        if isinstance(out, BaseCallbackManager):
            out.add_handler(tracer, inherit=True)
        else:
            out.append(tracer)
    return out


def run_config(
    thread_id: str | None, context: Context | None = None, settings: Settings | None = None, *, visual: bool = False
) -> dict[str, Any]:
    """The RunnableConfig of one turn: thread, run name, tags and metadata that make a trace readable.

    ``settings``: those of the graph's service factory (default :func:`get_settings`, as the module graph's).
    What is traced and how is the graph's own business (:class:`~slc.graphs.guard.GuardedGraph`).
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
    }
    if thread_id:
        cfg["configurable"] = {"thread_id": thread_id}
        cfg["metadata"]["thread_id"] = thread_id
    return cfg


__all__ = ["PATH_PLACEHOLDER", "PLACEHOLDER", "langsmith_client", "private_callbacks", "redact",
           "reset_clients", "run_config", "tracing_enabled"]
