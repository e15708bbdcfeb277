"""The model and tenant flags the product commands share, and the services a command runs on.

Why here: ``ask``, ``chat``, ``scan`` and ``demo`` take the same ``--small-model/--large-model/--base-url``
(and ``--tenant``) flags and must fail the same way BEFORE any model runs: a missing API key names its
variable, a dead endpoint names its URL, a model that is neither local nor on a reachable hub says so.
The flags only change settings; building and checking the models is the service factory's job.
"""

from __future__ import annotations

from typing import Optional

import typer

from slc.agent.settings import Settings, get_settings
from slc.graphs.services import ServiceFactory

SmallOpt: Optional[str] = typer.Option(
    None, "--small-model", help="Small VLM checkpoint (HF id or local folder); default settings.small.model.")
LargeOpt: Optional[str] = typer.Option(
    None, "--large-model", help='Large VLM: "provider:model" (e.g. openai:gpt-4o) or the name served at --base-url.')
BaseUrlOpt: Optional[str] = typer.Option(
    None, "--base-url", help="OpenAI-compatible endpoint of the large VLM (vLLM, Ollama, transformers serve).")
TenantOpt: Optional[str] = typer.Option(None, "--tenant", "-t", help="Whose concepts (default: settings.tenant).")


def with_overrides(
    settings: Settings | None = None,
    *,
    small_model: str | None = None,
    large_model: str | None = None,
    base_url: str | None = None,
    tenant: str | None = None,
) -> Settings:
    """A copy of the settings with the command-line choices applied (None = keep)."""
    s = settings or get_settings()
    small = s.small.model_copy(update={"model": small_model}) if small_model else s.small
    large_upd = {k: v for k, v in {"model": large_model, "base_url": base_url}.items() if v is not None}
    if base_url and not large_model and s.large.model == "local":
        large_upd["model"] = "default"  # many local servers accept any name; say --large-model for others
    upd: dict[str, object] = {"small": small, "large": s.large.model_copy(update=large_upd)}
    if tenant:
        upd["tenant"] = tenant
    return s.model_copy(update=upd)


def checked_services(
    *,
    small_model: str | None = None,
    large_model: str | None = None,
    base_url: str | None = None,
    tenant: str | None = None,
    large: bool = True,
) -> ServiceFactory:
    """The services of a command run with these flags, checked now (see :meth:`ServiceFactory.check`)."""
    services = ServiceFactory(with_overrides(small_model=small_model, large_model=large_model, base_url=base_url,
                                             tenant=tenant))
    services.check(large=large)
    return services


__all__ = ["BaseUrlOpt", "LargeOpt", "SmallOpt", "TenantOpt", "checked_services", "with_overrides"]
