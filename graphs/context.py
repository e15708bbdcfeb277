"""Per-run context of the SLC graph (LangGraph 1.x ``context_schema``) and the heavy services it uses.

Why a context and not state: which tenant, how many reflection rounds, whether images may reach traces
are choices of the caller for this run, not facts of the conversation, so they are not checkpointed.
The heavy objects (concept memory, small VLM, large VLM, image store) are resolved lazily from settings
the first time a node needs them and cached per process: importing ``slc.graphs.slc`` (which LangGraph
Studio does) loads no model and opens no store. Tests inject their own ``Services``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from slc.agent.settings import Settings, get_settings


class MemoryLike(Protocol):
    """What the graph needs from concept memory (slc.memory.ConceptMemory satisfies it)."""

    def recall(self, text: str | None = None, image: Any = None) -> list[Any]: ...

    def list(self) -> list[Any]: ...

    def reference_image_paths(self, name: str) -> list[Any]: ...


class DetectorLike(Protocol):
    """What the graph needs from the small VLM (slc.agent.small_vlm.SmallVLM satisfies it)."""

    def detect(self, image: Any, concepts: list[Any], round: int = 0) -> list[Any]: ...


@dataclass
class Services:
    """The heavy collaborators of a run. Any field left ``None`` is built from settings on first use."""

    memory: Any = None
    small_vlm: Any = None
    large_vlm: Any = None
    image_store: Any = None


_LOCK = threading.Lock()
_CACHE: dict[tuple, Services] = {}


def _key(settings: Settings) -> tuple:
    return (str(settings.data_dir), settings.tenant, settings.small.model, settings.large.model, settings.large.base_url,
            settings.chroma.url, str(settings.chroma_path))


def default_services(settings: Settings) -> Services:
    """The process-wide services for these settings (built lazily, one field at a time)."""
    with _LOCK:
        return _CACHE.setdefault(_key(settings), Services())


def clear_services_cache() -> None:
    """Forget cached services (tests, or after changing settings in a long-lived process)."""
    with _LOCK:
        _CACHE.clear()


@dataclass
class Context:
    """Run-time choices for one invocation; every ``None`` falls back to the settings."""

    tenant: str | None = None
    reflection_rounds: int | None = None
    #: False skips the reflect node entirely (personalize -> reason): the small VLM's claims reach the
    #: answerer unverified. ``reflection_rounds=0`` is different: it still verifies once, it only never
    #: loops back. The evals' "slc-noreflect" mode uses this to measure what verification buys.
    reflect: bool = True
    redact_images: bool | None = None
    max_history_messages: int | None = None
    settings: Settings | None = None
    services: Services | None = field(default=None, repr=False)

    # -- resolved values --------------------------------------------------------------------------------
    def get_settings(self) -> Settings:
        if self.settings is None:
            base = get_settings()
            self.settings = base.model_copy(update={"tenant": self.tenant}) if self.tenant else base
        return self.settings

    @property
    def rounds(self) -> int:
        return self.get_settings().reflection_rounds if self.reflection_rounds is None else self.reflection_rounds

    @property
    def redact(self) -> bool:
        return self.get_settings().tracing.redact_images if self.redact_images is None else self.redact_images

    @property
    def history_limit(self) -> int:
        s = self.get_settings()
        return s.max_history_messages if self.max_history_messages is None else self.max_history_messages

    @property
    def tenant_name(self) -> str:
        return self.tenant or self.get_settings().tenant

    def _services(self) -> Services:
        if self.services is None:
            self.services = default_services(self.get_settings())
        return self.services

    def memory(self) -> Any:
        svc = self._services()
        if svc.memory is None:
            from slc.memory import ConceptMemory

            with _LOCK:
                if svc.memory is None:
                    svc.memory = ConceptMemory.from_settings(self.get_settings())
        return svc.memory

    def small_vlm(self) -> Any:
        svc = self._services()
        if svc.small_vlm is None:
            from slc.agent.small_vlm import SmallVLM

            with _LOCK:
                if svc.small_vlm is None:
                    svc.small_vlm = SmallVLM.from_settings(self.get_settings())
        return svc.small_vlm

    def large_vlm(self) -> Any:
        svc = self._services()
        if svc.large_vlm is None:
            from slc.agent.large_vlm import build_large_vlm

            with _LOCK:
                if svc.large_vlm is None:
                    svc.large_vlm = build_large_vlm(self.get_settings())
        return svc.large_vlm

    def image_store(self) -> Any:
        svc = self._services()
        if svc.image_store is None:
            from slc.memory.images import ImageStore

            # Query photos live beside (not inside) memory's per-tenant reference-image stores.
            svc.image_store = ImageStore(self.get_settings().data_dir / "query-images")
        return svc.image_store


__all__ = ["Context", "DetectorLike", "MemoryLike", "Services", "clear_services_cache", "default_services"]
