"""Settings overrides from command-line flags, an endpoint check, and the services a command runs on.

Why here: ``ask``, ``chat``, ``scan`` and ``demo`` take the same ``--small-model/--large-model/--base-url``
flags and must fail the same way BEFORE any model runs: a missing API key names its variable, a dead
endpoint names its URL, a model that is neither local nor on a reachable hub says so.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from slc.agent.errors import LargeVLMUnavailableError
from slc.agent.settings import Settings, get_settings


def with_overrides(
    settings: Settings | None = None,
    *,
    small_model: str | None = None,
    large_model: str | None = None,
    base_url: str | None = None,
    tenant: str | None = None,
    **large_fields: Any,
) -> Settings:
    """A copy of the settings with the command-line choices applied (None = keep)."""
    s = settings or get_settings()
    small = s.small.model_copy(update={"model": small_model}) if small_model else s.small
    large_upd = {k: v for k, v in {"model": large_model, "base_url": base_url, **large_fields}.items() if v is not None}
    if base_url and not large_model and s.large.model == "local":
        large_upd["model"] = "default"  # many local servers accept any name; say --large-model for others
    upd: dict[str, Any] = {"small": small, "large": s.large.model_copy(update=large_upd)}
    if tenant:
        upd["tenant"] = tenant
    return s.model_copy(update=upd)


def check_endpoint(base_url: str, timeout_s: float = 5.0) -> None:
    """Raise LargeVLMUnavailableError naming the URL when nothing answers there (any HTTP reply = up)."""
    url = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered (401, 404, 500...): the server is up; the call itself will report the rest
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LargeVLMUnavailableError(
            f"The large VLM endpoint {base_url} is down ({reason}): start the server, or fix --base-url / "
            "SLC_LARGE__BASE_URL."
        ) from None


def build_large(settings: Settings, *, check: bool = True) -> Any:
    """The large VLM chat model (MissingAPIKeyError / LargeVLMUnavailableError before any model runs)."""
    from slc.agent.large_vlm import build_large_vlm

    model = build_large_vlm(settings)
    if check and settings.large.base_url:
        check_endpoint(settings.large.base_url)
    return model


def check_small_model(ref: str) -> str:
    """A loadable small-model reference, or ModelNotFoundError now (not after recall, not mid-session).

    A local folder must be a checkpoint; a hub id must be in the local cache or fetchable.
    """
    from pathlib import Path

    from slc.agent.loading import _hub_file, _not_found, resolve_checkpoint

    resolved = resolve_checkpoint(ref)
    if not Path(resolved).is_dir() and _hub_file(resolved, "config.json") is None:
        raise _not_found(ref, "")
    return resolved


def build_small(settings: Settings, **overrides: Any) -> Any:
    """The small VLM (ModelNotFoundError when the checkpoint is neither local nor obtainable)."""
    from slc.agent.small_vlm import SmallVLM

    return SmallVLM.from_settings(settings, **overrides)


__all__ = ["build_large", "build_small", "check_small_model", "check_endpoint", "with_overrides"]
