"""The one place the SLC graph's heavy collaborators are built from settings: :class:`ServiceFactory`.

Why one factory: the graph's nodes, the LangChain tools, the eval modes, the CLI and the demo all need the
same four things (a tenant's concept memory, the small VLM, the large VLM, the store of query photos) built
the same way and failing the same way. Models are built once per factory and shared by every tenant (a
server answering many users runs one small VLM and talks to one endpoint); concept memory is per tenant,
every tenant's memory on the factory's one index backend (one Chroma client, not one per tenant). Nothing
is built before it is asked for, so making a factory, or importing the module-level graph bound to
:func:`default_services`, loads no model and opens no store. Tests and callers inject ready instances.
"""

from __future__ import annotations

import functools
import threading
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from slc.agent.errors import LargeVLMUnavailableError
from slc.agent.settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from slc.agent.small_vlm import SmallVLM
    from slc.memory.images import ImageStore
    from slc.memory.index import IndexBackend
    from slc.memory.store import ConceptMemory


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


class ServiceFactory:
    """Concept memory per tenant, the small VLM, the large VLM and the query-photo store, from settings.

    ``settings``: default :func:`get_settings`, read on first use. ``memory``, ``small_vlm``, ``large_vlm``,
    ``image_store``: ready instances to use instead of building them (an injected ``memory`` serves every
    tenant: the caller chose it). Thread-safe: each service is built once, whichever thread asks first.
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
        self._memories: dict[str, ConceptMemory] = {}
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
            if tenant not in self._memories:
                from slc.memory.backends import open_backend
                from slc.memory.store import ConceptMemory

                if self._backend is None:
                    self._backend = open_backend(self.settings)
                self._memories[tenant] = ConceptMemory(self.settings, tenant=tenant, backend=self._backend)
            return self._memories[tenant]

    def small_vlm(self) -> SmallVLM:
        """The small VLM (ModelNotFoundError when its checkpoint is neither local nor obtainable)."""
        with self._locks["small_vlm"]:
            if self._small_vlm is None:
                from slc.agent.small_vlm import SmallVLM

                self._small_vlm = SmallVLM.from_settings(self.settings)
            return self._small_vlm

    def large_vlm(self) -> BaseChatModel:
        """The large VLM; one that names an endpoint is built only once that endpoint answers.

        Raises MissingAPIKeyError (naming the variable) or LargeVLMUnavailableError (naming the URL) before
        any request is made; a failed build is not kept, so the next call tries again.
        """
        with self._locks["large_vlm"]:
            if self._large_vlm is None:
                from slc.agent.large_vlm import build_large_vlm

                model = build_large_vlm(self.settings)
                if self.settings.large.base_url:
                    check_endpoint(self.settings.large.base_url)
                self._large_vlm = model
            return self._large_vlm

    def image_store(self) -> ImageStore:
        """The store of query photos: content-addressed, beside (not inside) memory's reference images."""
        with self._locks["image_store"]:
            if self._image_store is None:
                from slc.memory.images import ImageStore

                self._image_store = ImageStore(self.settings.data_dir / "query-images")
            return self._image_store

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


@functools.cache
def default_services() -> ServiceFactory:
    """The process-wide factory over :func:`get_settings` that the module-level ``graph`` runs on."""
    return ServiceFactory()


__all__ = ["ServiceFactory", "check_endpoint", "default_services"]
