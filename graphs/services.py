"""The one place the SLC graph's heavy collaborators are built from settings: :class:`ServiceFactory`.

Why one factory: the graph's nodes, the LangChain tools, the eval modes, the CLI and the demo all need the
same four things (a tenant's concept memory, the small VLM, the large VLM, a tenant's store of query photos)
built the same way and failing the same way. Models are built once per factory and shared by every tenant
(a server answering many users runs one small VLM and talks to one endpoint; the memory's image and text
encoders are loaded once per process, :mod:`slc.memory.embedders`); concept memory and query photos are
per tenant, every tenant's memory on the factory's one index backend (one Chroma client and one bounded
cache of in-process index copies, not one per tenant). What a tenant costs the process is bounded too: the
factory keeps the :class:`ConceptMemory` and photo-store handles of the :data:`OPEN_TENANTS` most recent
tenants (they are small and cheap to reopen; their data lives in the backend's cache), so a server that has
seen 10,000 tenants holds 10,000 of nothing (benchmarks/tenants.py). A graph node gets
:meth:`ServiceFactory.for_tenant`, the view of ONE tenant: the run's tenant is the only one whose memory and
photos it can reach. Nothing is built before it is asked for, so making a factory, or importing the
module-level graph bound to :func:`default_services`, loads no model and opens no store. Tests and callers
inject ready instances.
"""

from __future__ import annotations

import functools
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from typing import TYPE_CHECKING, TypeVar

from slc.agent.errors import LargeVLMConfigError, LargeVLMUnavailableError
from slc.agent.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel

    from slc.agent.small_vlm import SmallVLM
    from slc.memory.images import ImageStore
    from slc.memory.index import IndexBackend
    from slc.memory.store import ConceptMemory


#: How often a process sweeps a tenant's expired query photos (besides when it first opens the store).
_SWEEP_EVERY_S = 3600.0
#: Tenants whose memory and photo-store handles a factory keeps open (least recently used first out).
OPEN_TENANTS = 1024

K = TypeVar("K")
V = TypeVar("V")


def _recent(cache: OrderedDict[K, V], key: K, make: "Callable[[], V]", limit: int = OPEN_TENANTS) -> V:
    """``cache[key]``, made on a miss; the least recently used entries beyond ``limit`` are dropped."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > limit:
        cache.popitem(last=False)
    return value


def check_endpoint(base_url: str, timeout_s: float = 5.0, *, model: str | None = None, api_key: str | None = None) -> None:
    """Raise LargeVLMUnavailableError naming the URL when nothing answers there (any HTTP reply = up), and
    LargeVLMConfigError when it refuses the credentials (401/403) or, given ``model``, when its ``/models``
    lists models and ``model`` is not one of them (the message names the served ones)."""
    import json

    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = resp.read(1_000_000)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise LargeVLMConfigError(
                f"The large VLM endpoint {base_url} refused the credentials (HTTP {exc.code}): set "
                "SLC_LARGE__API_KEY (or OPENAI_API_KEY) to a key it accepts.") from None
        return  # it answered (404, 500...): the server is up; the call itself will report the rest
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LargeVLMUnavailableError(
            f"The large VLM endpoint {base_url} is down ({reason}): start the server, or fix --base-url / "
            "SLC_LARGE__BASE_URL."
        ) from None
    if not model or model == "default":  # "default": the CLI's name for "whatever the server serves"
        return
    try:
        served = [str(m["id"]) for m in json.loads(body)["data"] if isinstance(m, dict) and "id" in m]
    except (ValueError, KeyError, TypeError):
        return  # no model list there: nothing to check against
    if served and model not in served:
        shown = ", ".join(repr(m) for m in served[:10]) + (f" and {len(served) - 10} more" if len(served) > 10 else "")
        raise LargeVLMConfigError(
            f"The large VLM endpoint {base_url} does not serve model {model!r} (it lists {shown}): set "
            "SLC_LARGE__MODEL (--large-model) to one of them (or SLC_LARGE__CHECK_MODEL=false for a server "
            "that loads models on demand).")


class ServiceFactory:
    """Concept memory and query photos per tenant, the small VLM and the large VLM, from settings.

    ``settings``: default :func:`get_settings`, read on first use. ``memory``, ``small_vlm``, ``large_vlm``,
    ``image_store``: ready instances to use instead of building them (an injected ``memory`` or
    ``image_store`` serves every tenant: the caller chose it). Thread-safe: each service is built once,
    whichever thread asks first.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        memory: ConceptMemory | None = None,
        small_vlm: SmallVLM | None = None,
        large_vlm: BaseChatModel | None = None,
        image_store: ImageStore | None = None,
    ) -> None:
        self._settings = settings
        self._memory = memory
        self._small_vlm = small_vlm
        self._large_vlm = large_vlm
        self._image_store = image_store
        self._memories: OrderedDict[str, ConceptMemory] = OrderedDict()
        self._image_stores: OrderedDict[str, tuple[ImageStore, list[float]]] = OrderedDict()  # + last sweep time
        self._backend: IndexBackend | None = None
        # one lock per service: loading the small VLM must not hold up opening a tenant's memory
        self._locks = {name: threading.Lock() for name in ("memory", "small_vlm", "large_vlm", "image_store")}

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    def memory(self, tenant: str | None = None) -> ConceptMemory:
        """``tenant``'s concept memory (default ``settings.tenant``), opened once on the shared backend."""
        if self._memory is not None:
            return self._memory
        tenant = tenant or self.settings.tenant
        with self._locks["memory"]:
            if self._backend is None:
                from slc.memory.backends import open_backend

                self._backend = open_backend(self.settings)
            backend = self._backend

            def make() -> ConceptMemory:
                from slc.memory.store import ConceptMemory

                return ConceptMemory(self.settings, tenant=tenant, backend=backend)

            return _recent(self._memories, tenant, make)

    def small_vlm(self) -> SmallVLM:
        """The small VLM (ModelNotFoundError when its checkpoint is neither local nor obtainable)."""
        with self._locks["small_vlm"]:
            if self._small_vlm is None:
                from slc.agent.small_vlm import SmallVLM

                self._small_vlm = SmallVLM.from_settings(self.settings)
            return self._small_vlm

    def large_vlm(self) -> BaseChatModel:
        """The large VLM; one that names an endpoint is built only once that endpoint answers.

        Raises MissingAPIKeyError (naming the variable), LargeVLMConfigError (credentials refused, a model the
        endpoint does not list) or LargeVLMUnavailableError (naming the URL) before any chat request is made; a failed build is not kept, so the next call tries again.
        """
        with self._locks["large_vlm"]:
            if self._large_vlm is None:
                from slc.agent.large_vlm import build_large_vlm

                model = build_large_vlm(self.settings)
                large = self.settings.large
                if large.base_url:
                    check_endpoint(large.base_url, model=large.model if large.check_model else None,
                                   api_key=large.api_key.get_secret_value() if large.api_key else None)
                self._large_vlm = model
            return self._large_vlm

    def image_store(self, tenant: str | None = None) -> ImageStore:
        """``tenant``'s store of query photos (default ``settings.tenant``): content-addressed, in its own folder
        under ``settings.query_images_dir``. Photos older than ``settings.privacy.query_photo_retention_days``
        (since their last use) are deleted when a process first opens the store, and hourly after that."""
        if self._image_store is not None:
            return self._image_store
        tenant = tenant or self.settings.tenant
        with self._locks["image_store"]:

            def make() -> tuple[ImageStore, list[float]]:
                from slc.memory.images import ImageStore
                from slc.memory.names import tenant_key

                return ImageStore(self.settings.query_images_dir / tenant_key(tenant)), [0.0]

            store, swept = _recent(self._image_stores, tenant, make)
            now = time.time()
            if now - swept[0] >= _SWEEP_EVERY_S:
                swept[0] = now
                store.delete_older_than(now - self.settings.privacy.query_photo_retention_days * 86400)
            return store

    def for_tenant(self, tenant: str) -> ServiceFactory:
        """This factory as one tenant's run sees it (see :class:`TenantServices`)."""
        return TenantServices(self, tenant)

    def check(self, *, large: bool = True) -> None:
        """Fail now rather than mid-turn: the configured small model must be loadable (ModelNotFoundError),
        and with ``large`` the large VLM buildable and its endpoint up."""
        if self._small_vlm is None and self.settings.small.model:
            from slc.agent.loading import check_checkpoint

            check_checkpoint(self.settings.small.model)
        if large:
            self.large_vlm()

    def close(self) -> None:
        """Close the memories and the index backend this factory opened (injected services stay open)."""
        with self._locks["memory"]:
            for memory in self._memories.values():
                memory.close()
            self._memories.clear()
            if self._backend is not None:
                self._backend.close()
                self._backend = None


class TenantServices(ServiceFactory):
    """One tenant's view of a :class:`ServiceFactory`: the shared models, and that tenant's memory and query
    photos only. Why: the graph's nodes get this for their run's tenant, so no node can reach another
    tenant's concepts or photos, whatever it is given. It owns nothing: closing it closes nothing."""

    def __init__(self, factory: ServiceFactory, tenant: str) -> None:  # noqa: D107 - no ServiceFactory state
        self._factory = factory
        self.tenant = tenant

    @property
    def settings(self) -> Settings:
        return self._factory.settings

    def memory(self, tenant: str | None = None) -> ConceptMemory:
        if tenant not in (None, self.tenant):
            raise PermissionError(f"a run of tenant {self.tenant!r} cannot open the memory of another tenant")
        return self._factory.memory(self.tenant)

    def small_vlm(self) -> SmallVLM:
        return self._factory.small_vlm()

    def large_vlm(self) -> BaseChatModel:
        return self._factory.large_vlm()

    def image_store(self, tenant: str | None = None) -> ImageStore:
        if tenant not in (None, self.tenant):
            raise PermissionError(f"a run of tenant {self.tenant!r} cannot open the photos of another tenant")
        return self._factory.image_store(self.tenant)

    def for_tenant(self, tenant: str) -> ServiceFactory:
        return self._factory.for_tenant(tenant)

    def check(self, *, large: bool = True) -> None:
        self._factory.check(large=large)

    def close(self) -> None:
        pass


@functools.cache
def default_services() -> ServiceFactory:
    """The process-wide factory over :func:`get_settings` that the module-level ``graph`` runs on."""
    return ServiceFactory()


__all__ = ["OPEN_TENANTS", "ServiceFactory", "TenantServices", "check_endpoint", "default_services"]
