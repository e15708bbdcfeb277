"""The large VLM: any LangChain chat model, built from settings, plus the errors and images around it.

Why one factory: the graph must not care whether the large VLM is GPT-4o, Claude, an open model behind
vLLM/Ollama/LM Studio, or a tiny checkpoint behind ``transformers serve`` in a test. It gets a
``BaseChatModel`` and calls :func:`call_large_vlm`, which turns every "the model did not answer" failure
into :class:`LargeVLMUnavailableError` naming the endpoint, so the graph can degrade instead of crash.

Retries (precise): for OpenAI-compatible endpoints (``ChatOpenAI``, also used for every ``base_url``) the
``openai`` client itself retries ``settings.large.max_retries`` times with exponential backoff + jitter
(0.5 s doubling, capped at 8 s, honouring ``Retry-After``) on: connection errors, timeouts, and HTTP 408,
409, 429 and >= 500. Other providers built by ``init_chat_model`` get the same ``max_retries``/``timeout``
keywords, which their clients (anthropic, google...) interpret with their own backoff. We add no second
retry layer on top: retrying retries would multiply the wait when an endpoint is really down.

Error policy (one place, :func:`_classified`): a fault that retrying cannot fix (no model configured,
credentials refused, an unknown model, a wrong URL) is :class:`LargeVLMConfigError`, one line naming the
setting with the server's own reason; the turn raises it. A transient one (no answer, 429/5xx, the call's
total deadline, ``settings.large.call_deadline_s()``) is :class:`LargeVLMUnavailableError`, and a reply that
is not a usable chat completion (truncated JSON, an HTML page, no ``message``, a request refused for this
input) is :class:`LargeVLMReplyError`: the turn degrades. Every HTTP request a call makes is counted,
retries included (:class:`CallAttempts`), for OpenAI-compatible endpoints; other clients count one per call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import io
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import ValidationError

from slc.agent.processes import console_script, free_port, stop_process, wait_healthy
from slc.agent.errors import (
    LargeVLMConfigError,
    LargeVLMReplyError,
    LargeVLMUnavailableError,
    MissingAPIKeyError,
    SLCError,
)
from slc.agent.settings import LargeVLMSettings, Settings

#: Environment variable each init_chat_model provider reads its key from (providers not listed,
#: e.g. ollama, bedrock, google_vertexai, authenticate otherwise or need no key).
PROVIDER_KEY_VARS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "xai": "XAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "cohere": "COHERE_API_KEY",
    "perplexity": "PPLX_API_KEY",
}

#: ``large.model = "local:<checkpoint>"``: the checkpoint runs in this process (no server).
LOCAL_PREFIX = "local:"

#: Exception class names (any provider's SDK) that mean "the endpoint did not answer usefully".
_UNAVAILABLE_NAMES = {
    "APIConnectionError",
    "APITimeoutError",
    "InternalServerError",
    "RateLimitError",
    "ServiceUnavailableError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "TimeoutException",
    "RemoteProtocolError",
}


#: The request counter of the large-VLM call running in this context (see :class:`CallAttempts`).
_ATTEMPTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("slc_large_vlm_attempts", default=None)


def _count_request(request: Any) -> None:
    box = _ATTEMPTS.get()
    if box is not None:
        box[0] += 1


async def _acount_request(request: Any) -> None:
    _count_request(request)


def counting_http_clients() -> dict[str, Any]:
    """``http_client``/``http_async_client`` for ChatOpenAI whose every request (retries included, also one
    that never connects) counts toward the running call's :class:`CallAttempts`."""
    import openai

    return {"http_client": openai.DefaultHttpxClient(event_hooks={"request": [_count_request]}),
            "http_async_client": openai.DefaultAsyncHttpxClient(event_hooks={"request": [_acount_request]})}


class CallAttempts:
    """How many requests large-VLM calls made: each call adds the HTTP requests it sent (its client's
    retries included), or 1 for a client whose requests are not seen (another provider, an in-process model)."""

    def __init__(self) -> None:
        self.n = 0


def parse_model_spec(spec: str) -> tuple[str | None, str]:
    """``"openai:gpt-4o"`` -> ("openai", "gpt-4o"); a bare name -> (None, name), whose provider
    ``init_chat_model`` infers when the model is built (:func:`build_large_vlm`)."""
    provider, sep, model = spec.partition(":")
    return (provider, model) if sep and provider and model else (None, spec)


def build_large_vlm(settings: Settings | LargeVLMSettings) -> Any:
    """A LangChain chat model for the configured large VLM (no network call is made here).

    - ``base_url`` set: ``ChatOpenAI(base_url=..., model=...)`` (vLLM, Ollama's /v1, LM Studio,
      ``transformers serve``); a missing key is fine there (local servers ignore it).
    - ``model == "local:<checkpoint>"`` without ``base_url``: that checkpoint in this process
      (:class:`~slc.agent.local_chat.LocalChatVLM`: no server, no key; offline ``slc ask``/``chat``).
    - ``model == "local"`` without ``base_url``: an error telling how to serve one or run one in-process.
    - otherwise a ``provider:model`` spec (or a bare name whose provider ``init_chat_model`` can infer,
      e.g. ``gpt-4o``) through ``init_chat_model``. A ``provider:model`` spec with its provider's key
      missing raises :class:`MissingAPIKeyError` naming the variable, before anything is built; for a bare
      name only ``init_chat_model`` knows the provider, so that provider's own client reports a missing key.
    """
    large = settings.large if isinstance(settings, Settings) else settings
    key = large.api_key.get_secret_value() if large.api_key else None
    common: dict[str, Any] = {"temperature": large.temperature, "timeout": large.timeout_s, "max_retries": large.max_retries}
    if large.max_tokens:
        common["max_tokens"] = large.max_tokens
    if large.base_url:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=large.model,
            base_url=large.base_url,
            api_key=key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            **common,
            **counting_http_clients(),
        )
    if large.model.startswith(LOCAL_PREFIX) and len(large.model) > len(LOCAL_PREFIX):
        from slc.agent.loading import check_checkpoint
        from slc.agent.local_chat import LocalChatVLM

        checkpoint = check_checkpoint(large.model[len(LOCAL_PREFIX):])  # ModelNotFoundError now, not mid-turn
        return LocalChatVLM(model=checkpoint, max_tokens=large.max_tokens or 1024)
    if large.model == "local":
        raise LargeVLMConfigError(
            "large.model is 'local' but no large.base_url is set: start a local server with "
            "`transformers serve <checkpoint> --port 8000` (or slc.agent.large_vlm.serve_local) and set "
            "SLC_LARGE__BASE_URL=http://127.0.0.1:8000/v1 and SLC_LARGE__MODEL=<checkpoint>; or run it in this "
            "process with SLC_LARGE__MODEL=local:<checkpoint>."
        )
    provider, model = parse_model_spec(large.model)
    var = PROVIDER_KEY_VARS.get(provider or "")
    if var and not key and not os.environ.get(var):
        raise MissingAPIKeyError(
            f"The large VLM {provider}:{model} needs an API key: set {var} (or SLC_LARGE__API_KEY)."
        )
    from langchain.chat_models import init_chat_model

    kwargs: dict[str, Any] = dict(common)
    if key:
        kwargs["api_key"] = key
    if provider == "openai" or (provider is None and model.startswith(("gpt-", "o1", "o3", "o4"))):
        kwargs.update(counting_http_clients())
    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        raise SLCError(f"The large VLM {large.model!r} needs its provider's LangChain package: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - classified below; anything else propagates unchanged
        missing = next((v for v in PROVIDER_KEY_VARS.values() if v in str(exc)), None)
        if missing and not key:  # a bare name's provider client refused to start without its key
            raise MissingAPIKeyError(
                f"The large VLM {large.model} needs an API key: set {missing} (or SLC_LARGE__API_KEY).") from exc
        if provider is not None or not isinstance(exc, ValueError) or isinstance(exc, ValidationError):
            raise
        raise SLCError(  # init_chat_model could not infer a provider from the bare name
            f"Cannot tell which provider serves large model {model!r}: write it as 'provider:model' "
            "(e.g. 'openai:gpt-4o', 'anthropic:claude-sonnet-4-5') or set large.base_url for an "
            "OpenAI-compatible server (vLLM, Ollama, LM Studio, transformers serve)."
        ) from exc


def endpoint_of(model: Any) -> str:
    """Where a chat model sends requests (for error messages)."""
    for attr in ("openai_api_base", "base_url", "anthropic_api_url", "api_base"):
        value = getattr(model, attr, None)
        if value:
            return str(value)
    return f"the {type(model).__name__} provider's default endpoint"


def is_unavailable_error(exc: BaseException) -> bool:
    """True for timeouts, refused connections, 429 and 5xx (after the client's own retries)."""
    if isinstance(exc, (ConnectionError, TimeoutError, LargeVLMUnavailableError)):
        return True
    for cls in type(exc).__mro__:
        if cls.__name__ in _UNAVAILABLE_NAMES:
            return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _server_reason(exc: BaseException) -> str:
    """What the server itself said in an HTTP error (its JSON ``error.message``/``detail``/``message``, or
    the start of a text/HTML body), on one line."""
    body = getattr(exc, "body", None)
    text: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        text = (err.get("message") if isinstance(err, dict) else err) or body.get("detail") or body.get("message")
    elif isinstance(body, str):
        text = re.sub(r"<[^>]+>", " ", body)
    if not text:
        text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:300]


_MODEL_REFUSED = re.compile(r"pinned|unknown model|no such model|model\b.*\b(not found|does not exist|not available|"
                            r"not served|is not supported)", re.I)


#: Packages whose code reading a reply failing means the reply was bad (a provider SDK, its HTTP stack, its
#: LangChain integration), not our code.
_PROVIDER_PACKAGES = {"openai", "httpx", "httpcore", "anthropic", "google", "mistralai", "groq", "cohere", "ollama",
                      "botocore", "json", "pydantic", "pydantic_core"}


def _raised_by_provider(exc: BaseException) -> bool:
    """True when the traceback passes through a provider SDK or a ``langchain_<partner>`` package."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if module in _PROVIDER_PACKAGES or (module.startswith("langchain_") and module != "langchain_core"):
            return True
        tb = tb.tb_next
    return False


def classify_error(model: Any, exc: BaseException) -> SLCError | None:
    """The slc error a failed call is: config (retrying cannot help), unavailable, or a bad reply; None for
    an exception that is not about the endpoint at all (a bug below us: it propagates as it is)."""
    where = endpoint_of(model)
    name = str(getattr(model, "model_name", None) or getattr(model, "model", None) or "")
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if not isinstance(status, int) or status < 400:
        status = None  # e.g. a 200 whose body could not be read: a bad reply, not a refusal
    reason = _server_reason(exc) if isinstance(status, int) else ""
    if status in (401, 403):
        return LargeVLMConfigError(
            f"The large VLM at {where} refused the credentials (HTTP {status}: {reason}): set SLC_LARGE__API_KEY "
            "(or the provider's key variable, e.g. OPENAI_API_KEY) to a valid key.")
    if status in (400, 404, 422) and (status == 404 or (name and name in reason) or _MODEL_REFUSED.search(reason)):
        return LargeVLMConfigError(
            f"The large VLM at {where} refused model {name!r} (HTTP {status}: {reason}): set SLC_LARGE__MODEL "
            "(--large-model) to a model it serves, and check SLC_LARGE__BASE_URL (--base-url; an OpenAI-compatible "
            "server's URL usually ends in /v1).")
    if is_unavailable_error(exc):
        return LargeVLMUnavailableError(f"The large VLM at {where} did not answer ({type(exc).__name__}: {exc}).")
    if isinstance(status, int):
        return LargeVLMReplyError(f"The large VLM at {where} refused the request (HTTP {status}: {reason}).")
    if not _raised_by_provider(exc):
        return None  # a fault of our own code or of a model object in this process: not the endpoint's
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return LargeVLMReplyError(f"The large VLM at {where} sent a reply that is not a chat completion ({detail}).")


@contextlib.contextmanager
def _classified(model: Any) -> Iterator[None]:
    """Every failure of a call becomes one of slc's errors (see :func:`classify_error`); slc's own pass as they are."""
    try:
        yield
    except SLCError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a provider's SDK or a malformed reply raises
        classified = classify_error(model, exc)
        if classified is None:
            raise
        raise classified from exc


def _checked(model: Any, reply: Any) -> Any:
    content = getattr(reply, "content", None)
    if not isinstance(content, (str, list)):
        raise LargeVLMReplyError(f"The large VLM at {endpoint_of(model)} sent a reply without text "
                                 f"({type(reply).__name__}).")
    return reply


def _past_deadline(model: Any, deadline_s: float) -> LargeVLMUnavailableError:
    return LargeVLMUnavailableError(
        f"The large VLM at {endpoint_of(model)} did not finish within the call's deadline of {deadline_s:g} s "
        "(timed out; SLC_LARGE__DEADLINE_S, retries included).")


def call_large_vlm(model: Any, messages: Sequence[Any], config: dict[str, Any] | None = None, *,
                   deadline_s: float | None = None, attempts: CallAttempts | None = None) -> Any:
    """``model.invoke`` with slc's error policy (module docstring), ended after ``deadline_s`` in total (the
    request left behind is dropped when its own read timeout trips); its requests are added to ``attempts``."""
    box = [0]
    token = _ATTEMPTS.set(box)
    try:
        with _classified(model):
            if deadline_s is None:
                return _checked(model, model.invoke(list(messages), config=config))
            out: dict[str, Any] = {}
            done = threading.Event()

            def work() -> None:
                try:
                    out["reply"] = model.invoke(list(messages), config=config)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    out["error"] = exc
                finally:
                    done.set()

            ctx = contextvars.copy_context()  # the counter, and LangChain's tracing parent, go with the call
            threading.Thread(target=ctx.run, args=(work,), daemon=True, name="slc-large-vlm-call").start()
            if not done.wait(deadline_s):
                raise _past_deadline(model, deadline_s)
            if "error" in out:
                raise out["error"]
            return _checked(model, out["reply"])
    finally:
        _ATTEMPTS.reset(token)
        if attempts is not None:
            attempts.n += max(box[0], 1)


async def acall_large_vlm(model: Any, messages: Sequence[Any], config: dict[str, Any] | None = None, *,
                          deadline_s: float | None = None, attempts: CallAttempts | None = None) -> Any:
    """The async twin of :func:`call_large_vlm` (``await model.ainvoke``, cancelled at the deadline)."""
    box = [0]
    token = _ATTEMPTS.set(box)
    try:
        with _classified(model):
            call = model.ainvoke(list(messages), config=config)
            if deadline_s is None:
                return _checked(model, await call)
            try:
                return _checked(model, await asyncio.wait_for(call, deadline_s))
            except asyncio.TimeoutError as exc:
                raise _past_deadline(model, deadline_s) from exc
    finally:
        _ATTEMPTS.reset(token)
        if attempts is not None:
            attempts.n += max(box[0], 1)


def image_data_url(image: Image.Image, max_side: int) -> str:
    """``data:image/jpeg;base64,...`` of the image, downsized so its longest side is <= ``max_side``.

    Why JPEG: photos are what we send; JPEG at q=90 is ~5-10x smaller than PNG, which is what the
    provider bills and what crosses the wire on every verification and answer call.
    """
    img = image.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_part(image: Image.Image, max_side: int, *, detail: Literal["low", "high", "auto"] | None = None) -> dict[str, Any]:
    """An OpenAI-style ``image_url`` content part (understood by every LangChain chat model); ``detail``
    is OpenAI's resolution hint ("low": a fixed, small token cost), omitted when None."""
    url: dict[str, Any] = {"url": image_data_url(image, max_side)}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


# ---------------------------------------------------------------------------------------------------
# A local large VLM: `transformers serve` on loopback
# ---------------------------------------------------------------------------------------------------


def _transformers_cli() -> list[str]:
    found = console_script("transformers")
    if found:
        return [found]
    raise SLCError("The `transformers` CLI is not installed: pip install 'slc-agent[serving]'.")


@contextlib.contextmanager
def serve_local(
    model_path: str | Path,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 180.0,
    device: str = "cpu",
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``transformers serve <model_path> --port P`` on loopback; yields the ``/v1`` base URL.

    The model is passed as the positional FORCE_MODEL, so it is loaded once at start-up and every
    request must name it exactly: use ``str(model_path)`` as the ChatOpenAI ``model``. Local folders
    load offline (HF_HUB_OFFLINE=1 is set for the child). The server is stopped (SIGTERM, then SIGKILL)
    on exit, also when the body raises.
    """
    port = port or free_port(host)
    cmd = [*_transformers_cli(), "serve", str(model_path), "--host", host, "--port", str(port), "--device", device]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra_env or {})}
    log = tempfile.TemporaryFile()  # a file, not a pipe: an undrained pipe would block the server
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{host}:{port}"
    try:
        try:
            wait_healthy(f"{base}/health", proc, startup_timeout_s, what="`transformers serve`", poll_s=0.3)
        except SLCError as exc:
            log.seek(0)
            out = log.read().decode(errors="replace")
            raise LargeVLMUnavailableError(f"{exc}:\n{out[-4000:]}") from None
        yield f"{base}/v1"
    finally:
        stop_process(proc)
        log.close()


__all__ = [
    "LOCAL_PREFIX",
    "CallAttempts",
    "classify_error",
    "counting_http_clients",
    "PROVIDER_KEY_VARS",
    "acall_large_vlm",
    "build_large_vlm",
    "call_large_vlm",
    "endpoint_of",
    "free_port",
    "image_data_url",
    "image_part",
    "is_unavailable_error",
    "parse_model_spec",
    "serve_local",
]
