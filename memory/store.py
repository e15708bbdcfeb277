"""ConceptMemory: a tenant's personal concepts on Chroma, with their reference images.

Usage::

    from slc.memory import ConceptMemory
    mem = ConceptMemory(tenant="alice")                       # embedded Chroma under settings.data_dir
    bo = mem.add("<bo>", ["bo1.jpg", "bo2.jpg"], description="my golden retriever", category="dog")
    mem.recall_by_text("Is <bo> in the garden?")              # -> [RecallHit(concept=bo, matched_by=["name"])]
    mem.recall_by_image("photo.jpg")                          # nearest concepts above settings.recall_threshold
    mem.rename("bo", "bobo"); mem.delete("bobo")

Storage (why this shape):
- Two Chroma collections PER TENANT, ``<prefix>-<tenant-slug>-<hash>-concepts`` and ``...-images``. Separate
  collections make isolation structural (a query physically cannot see another tenant) and keep queries
  unfiltered: a metadata ``where`` filter cost ~58 ms at 100k records, an unfiltered HNSW query ~2 ms.
  Tenant names are arbitrary user strings; the slug keeps names readable, the sha256 suffix keeps
  "Alice" and "alice" (or any two strings with the same slug) apart.
- Image records: one per (concept, reference image), id ``<concept_id>:<sha256>``, the image embedding
  from :mod:`slc.memory.embedders` (always passed explicitly: Chroma's default embedding function would try
  to download a model), cosine HNSW tuned from ``settings.chroma.hnsw_*``.
- Concept record: id = a stable uuid (survives renames), the text embedding of name + category +
  description, and metadata holding everything else (identity and CaT tree as JSON, computed once at
  registration so queries never recompute them). It lists the concept's image digests and is written LAST:
  it is the commit marker. Image records that no concept record lists are invisible to queries and are
  garbage.
- Image files: a content-addressed :class:`~slc.memory.images.ImageStore` per tenant under
  ``settings.images_dir``, so the memory does not depend on the user's original files.

Integrity:
- Every image is validated, normalized and embedded before anything is written, so a bad image or an
  encoder failure stores nothing.
- Writes run under a file lock (one per Chroma folder in embedded mode, one per tenant in server mode), so
  registrations from several processes serialize: no lost update, no duplicate name.
- Each write first drops a small journal (what records and files it is about to create or remove); it is
  deleted once the write is done. A crash (even SIGKILL) leaves the journal behind; the next
  ``ConceptMemory`` opened on the same data replays it under the lock: records not listed by a committed
  concept and files no record uses are removed. :meth:`ConceptMemory.fsck` does the same for the whole
  tenant.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from slc.agent.errors import (
    DuplicateConceptError,
    InvalidConceptNameError,
    InvalidImageError,
    MemoryUnavailableError,
    UnknownConceptError,
)
from slc.agent.settings import Settings, get_settings
from slc.agent.images import ImageSource, load_image
from slc.memory.images import ImageStore, stored_size
from slc.memory.types import Concept, Identity, RecallHit, ReferenceImage

if TYPE_CHECKING:
    from PIL import Image

    from slc.memory.embedders import ImageEmbedder, TextEmbedder

log = logging.getLogger(__name__)

MAX_NAME_LEN = 64
_NAME_RE = re.compile(r"^[^\W_][\w\-]*$", re.UNICODE)
_WORD_RE = re.compile(r"[\w\-]+", re.UNICODE)
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: Hybrid recall: a description counts as matching the question from this cosine similarity up.
DEFAULT_TEXT_THRESHOLD = 0.5


# ----------------------------------------------------------------------------------------- names / tenants
def normalize_name(name: str) -> str:
    """``"<Bo>"`` / ``" bo "`` -> ``"Bo"``; raises InvalidConceptNameError for names text matching can't find.

    A name is a single word: letters/digits (any script), ``_`` and ``-`` inside, at most 64 chars,
    starting with a letter or digit. Case is kept for display; uniqueness and matching ignore case.
    """
    if not isinstance(name, str):
        raise InvalidConceptNameError(f"Concept name must be a string, got {type(name).__name__}")
    raw = name.strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1].strip()
    if not raw:
        raise InvalidConceptNameError(f"Concept name {name!r} is empty")
    if len(raw) > MAX_NAME_LEN:
        raise InvalidConceptNameError(f"Concept name {raw[:20]!r}... is {len(raw)} characters; the limit is {MAX_NAME_LEN}")
    if not _NAME_RE.match(raw) or raw.endswith("-"):
        raise InvalidConceptNameError(
            f"Concept name {name!r} is not valid: use one word of letters, digits, '_' or '-' "
            "(no spaces or brackets inside), e.g. 'bo' or 'my-mug'"
        )
    return raw


def _slug(text: str, limit: int) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "x"


def tenant_key(tenant: str) -> str:
    """A filesystem- and Chroma-safe, collision-free key for an arbitrary tenant string."""
    if not isinstance(tenant, str) or not tenant.strip():
        raise ValueError("tenant must be a non-empty string")
    return f"{_slug(tenant, 40)}-{hashlib.sha256(tenant.encode('utf-8')).hexdigest()[:12]}"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _rel_file(ref: ReferenceImage) -> str:
    p = Path(ref.path)
    return f"{p.parent.name}/{p.name}"


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """One small pool per process for encoder work that overlaps other work of the same call."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slc-memory")
        return _POOL


def _image_record_id(concept_id: str, sha256: str) -> str:
    """Chroma id of one reference image of one concept; :func:`_concept_of` reads the concept back, so
    image queries need no metadata fetch."""
    return f"{concept_id}:{sha256}"


def _concept_of(record_id: str) -> str:
    return record_id.partition(":")[0]


def _as_list(images: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    if isinstance(images, (str, Path, bytes, bytearray)) or hasattr(images, "getpixel"):
        return [images]  # type: ignore[list-item]
    return list(images)  # type: ignore[arg-type]


class _Prepared:
    __slots__ = ("image", "data", "sha", "embedding")

    def __init__(self, image: "Image.Image", data: bytes, sha: str) -> None:
        self.image, self.data, self.sha = image, data, sha
        self.embedding: np.ndarray | None = None


# ----------------------------------------------------------------------------------------- the memory
class ConceptMemory:
    """One tenant's concept memory (see the module docstring for storage and integrity)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tenant: str | None = None,
        image_embedder: "ImageEmbedder | None" = None,
        text_embedder: "TextEmbedder | None" = None,
        client: Any = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.tenant = tenant if tenant is not None else self.settings.tenant
        self.key = tenant_key(self.tenant)
        self._image_embedder = image_embedder
        self._text_embedder = text_embedder
        self._owns_client = client is None
        self._client = client if client is not None else self._make_client()
        self.images = ImageStore(self.settings.images_dir / self.key)
        self._journal_dir = self.settings.data_dir / "memory-journal" / self.key
        if self.settings.chroma.mode == "embedded" and client is None:
            lock_path = Path(str(self.settings.chroma_path).rstrip("/") + ".lock")
        else:
            lock_path = self.settings.data_dir / "locks" / f"memory-{self.key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(lock_path), timeout=120)
        prefix = _slug(self.settings.chroma.collection_prefix, 20)
        self.collection_names = (f"{prefix}-{self.key}-concepts", f"{prefix}-{self.key}-images")
        try:
            self._concepts = self._collection(self.collection_names[0], kind="concepts")
            self._imgs = self._collection(self.collection_names[1], kind="images")
        except Exception as exc:  # noqa: BLE001 - chromadb raises many types for an unreachable/broken store
            raise MemoryUnavailableError(f"Cannot open concept memory collections: {exc}") from exc
        self._recover()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> "ConceptMemory":
        return cls(settings, **kwargs)

    def close(self) -> None:
        """Release the Chroma client this memory made (a client passed in by the caller stays open).

        Why: an embedded Chroma keeps its store open per process; a memory re-created on a deleted and
        recreated folder in the same process would otherwise still see the old data."""
        if self._owns_client:
            close = getattr(self._client, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> "ConceptMemory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------------
    def _make_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        url = self.settings.chroma.url
        try:
            if url:
                from urllib.parse import urlparse

                u = urlparse(url if "://" in url else f"http://{url}")
                client = chromadb.HttpClient(
                    host=u.hostname or "localhost",
                    port=u.port or (443 if u.scheme == "https" else 8000),
                    ssl=u.scheme == "https",
                    settings=chroma_settings,
                )
                client.heartbeat()
                return client
            path = self.settings.chroma_path
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001
            where = url or str(self.settings.chroma_path)
            raise MemoryUnavailableError(f"Cannot reach concept memory at {where}: {exc}") from exc

    def _collection(self, name: str, *, kind: str) -> Any:
        c = self.settings.chroma
        return self._client.get_or_create_collection(
            name,
            embedding_function=None,
            metadata={"slc_kind": kind, "slc_tenant_key": self.key},
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "ef_search": c.hnsw_ef_search,
                    "ef_construction": c.hnsw_ef_construction,
                    "max_neighbors": c.hnsw_m,
                    "sync_threshold": c.hnsw_sync_threshold,
                }
            },
        )

    @property
    def image_embedder(self) -> "ImageEmbedder":
        if self._image_embedder is None:
            from slc.memory.embedders import get_image_embedder

            self._image_embedder = get_image_embedder(self.settings)
        return self._image_embedder

    @property
    def text_embedder(self) -> "TextEmbedder":
        if self._text_embedder is None:
            from slc.memory.embedders import get_text_embedder

            self._text_embedder = get_text_embedder(self.settings)
        return self._text_embedder

    def _text_vector(self, name: str, category: str | None, description: str) -> list[float]:
        text = " ".join(p for p in (name, f"({category})" if category else "", description) if p)
        return self.text_embedder.embed_texts([text])[0].tolist()

    # -- records <-> Concept -----------------------------------------------------------------------------
    def _to_concept(self, cid: str, md: dict[str, Any]) -> Concept:
        images = [
            ReferenceImage(
                sha256=i["sha256"],
                # "file" (relative to the tenant's image store) saves a stat per image on the recall path
                path=str(self.images.root / i["file"]) if i.get("file") else str(self.images.path(i["sha256"])),
                width=i["width"],
                height=i["height"],
            )
            for i in json.loads(md.get("images") or "[]")
        ]
        identity = Identity.model_validate_json(md["identity"]) if md.get("identity") else None
        return Concept(
            id=cid,
            tenant=self.tenant,
            name=md["name"],
            description=md.get("description") or "",
            identity=identity,
            tree=json.loads(md["tree"]) if md.get("tree") else None,
            images=images,
            adapter=md.get("adapter") or None,
            created_at=datetime.fromisoformat(md["created_at"]),
            updated_at=datetime.fromisoformat(md["updated_at"]),
        )

    @staticmethod
    def _to_metadata(c: Concept) -> dict[str, Any]:
        return {
            "name": c.name,
            "name_lower": c.name.lower(),
            "description": c.description,
            "category": c.category or "",
            "identity": c.identity.model_dump_json() if c.identity else "",
            "tree": json.dumps(c.tree) if c.tree is not None else "",
            "adapter": c.adapter or "",
            "images": json.dumps([{"sha256": i.sha256, "width": i.width, "height": i.height, "file": _rel_file(i)} for i in c.images]),
            "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(),
        }

    def _find(self, name_or_id: str) -> Concept | None:
        if isinstance(name_or_id, str) and re.fullmatch(r"[0-9a-f]{32}", name_or_id):
            got = self._concepts.get(ids=[name_or_id], include=["metadatas"])
            if got["ids"]:
                return self._to_concept(got["ids"][0], got["metadatas"][0])
        name = normalize_name(name_or_id)
        got = self._concepts.get(where={"name_lower": name.lower()}, include=["metadatas"])
        if not got["ids"]:
            return None
        return self._to_concept(got["ids"][0], got["metadatas"][0])

    def _names(self) -> list[str]:
        return [m["name"] for m in self._concepts.get(include=["metadatas"])["metadatas"]]

    def _unknown(self, name: str) -> UnknownConceptError:
        try:
            bare = normalize_name(name)
        except InvalidConceptNameError:
            bare = str(name)
        names = self._names()
        lower = {n.lower(): n for n in names}
        close = difflib.get_close_matches(bare.lower(), list(lower), n=3, cutoff=0.6)
        return UnknownConceptError(bare, [lower[c] for c in close])

    # -- journal (crash recovery) ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _journal(self, record_ids: Iterable[str], shas: Iterable[str]) -> Iterator[None]:
        """Record what a write is about to touch; removed when the write finishes (or is rolled back)."""
        self._journal_dir.mkdir(parents=True, exist_ok=True)
        path = self._journal_dir / f"{uuid.uuid4().hex}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"record_ids": list(record_ids), "shas": list(shas)}))
        os.replace(tmp, path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def _reconcile(self, record_ids: Sequence[str], shas: Sequence[str]) -> int:
        """Delete image records whose concept does not list them, then files no record uses. Lock held."""
        removed = 0
        if record_ids:
            got = self._imgs.get(ids=list(record_ids), include=["metadatas"])
            cids = sorted({m["concept_id"] for m in got["metadatas"]})
            listed: dict[str, set[str]] = {}
            if cids:
                cs = self._concepts.get(ids=cids, include=["metadatas"])
                for cid, md in zip(cs["ids"], cs["metadatas"]):
                    listed[cid] = {i["sha256"] for i in json.loads(md.get("images") or "[]")}
            stale = [
                rid for rid, m in zip(got["ids"], got["metadatas"]) if m["sha256"] not in listed.get(m["concept_id"], set())
            ]
            if stale:
                self._imgs.delete(ids=stale)
                removed += len(stale)
        for sha in set(shas):
            if not self._imgs.get(where={"sha256": sha}, include=[], limit=1)["ids"]:
                removed += int(self.images.delete(sha))
        return removed

    def _recover(self) -> None:
        """Replay journals and remove temp files left by crashed writers.

        Runs at open only if the lock is free right now: a journal or temp file seen while holding the
        lock cannot belong to a live writer (writers keep the lock for the whole life of both). When the
        lock is busy we skip; reads stay correct meanwhile because uncommitted image records belong to no
        concept record and are never returned.
        """
        try:
            self._lock.acquire(timeout=0)
        except TimeoutError:  # filelock.Timeout subclasses TimeoutError
            return
        try:
            self.images.clean_temp_files()
            if not self._journal_dir.is_dir():
                return
            for j in sorted(self._journal_dir.glob("*.json")):
                try:
                    data = json.loads(j.read_text())
                except (OSError, ValueError):
                    j.unlink(missing_ok=True)
                    continue
                n = self._reconcile(data.get("record_ids", []), data.get("shas", []))
                log.warning("Recovered from an interrupted memory write (%s): removed %d orphan(s)", j.name, n)
                j.unlink(missing_ok=True)
            for t in self._journal_dir.glob("*.tmp"):
                t.unlink(missing_ok=True)
        finally:
            self._lock.release()

    def fsck(self) -> int:
        """Full consistency pass for this tenant: orphan image records and unused files are removed.
        Returns how many things were removed. Cost grows with the memory; :meth:`_recover` is the cheap one."""
        with self._lock:
            got = self._imgs.get(include=[])
            n = self._reconcile(got["ids"], [])
            used = {m["sha256"] for m in self._imgs.get(include=["metadatas"])["metadatas"]}
            for sha in list(self.images):
                if sha not in used:
                    n += int(self.images.delete(sha))
            return n

    # -- writing -----------------------------------------------------------------------------------------
    def _prepare(self, images: ImageSource | Sequence[ImageSource]) -> list[_Prepared]:
        sources = _as_list(images)
        if not sources:
            raise InvalidImageError("A concept needs at least one reference image")
        prepared: dict[str, _Prepared] = {}
        side = getattr(self.image_embedder, "input_side", None)  # decode JPEGs no larger than the encoder needs
        for src in sources:  # validate + normalize EVERY image before anything is written
            img, data, sha = self.images.prepare(src, decode_side=side)
            prepared.setdefault(sha, _Prepared(img, data, sha))
        items = list(prepared.values())
        vecs = np.asarray(self.image_embedder.embed_images([p.image for p in items]), dtype=np.float32)
        if vecs.shape[0] != len(items):
            raise RuntimeError(f"image embedder returned {vecs.shape[0]} vectors for {len(items)} images")
        for p, v in zip(items, vecs):
            p.embedding = v
        return items

    def _write_images(self, cid: str, items: Sequence[_Prepared]) -> list[ReferenceImage]:
        refs = [self.images.write(p.data, p.sha, stored_size(p.image)) for p in items]
        self._imgs.add(
            ids=[_image_record_id(cid, p.sha) for p in items],
            embeddings=[p.embedding.tolist() for p in items],  # type: ignore[union-attr]
            metadatas=[{"concept_id": cid, "sha256": p.sha} for p in items],
        )
        return refs

    def add(
        self,
        name: str,
        images: ImageSource | Sequence[ImageSource],
        *,
        description: str = "",
        category: str | None = None,
        identity: Identity | None = None,
        tree: dict | None = None,
    ) -> Concept:
        """Register a concept with 1..N reference images; all or nothing.

        ``category`` sets (or overrides) ``identity.category``. Raises InvalidConceptNameError,
        DuplicateConceptError, InvalidImageError (nothing is stored in every case).
        """
        name = normalize_name(name)
        if category is not None:
            identity = (identity or Identity(category=category)).model_copy(update={"category": category})
        if self._find(name) is not None:  # fail fast before the costly embedding; re-checked under the lock
            raise DuplicateConceptError(f"Concept <{name}> already exists for tenant {self.tenant!r}")
        cid = uuid.uuid4().hex
        concept = Concept(id=cid, tenant=self.tenant, name=name, description=description or "", identity=identity, tree=tree)
        # The text encoder runs on another thread while the photos are decoded and embedded here (torch and
        # PIL release the GIL): a quarter of a 5-photo registration's time on a 2-core machine.
        text_job = _background().submit(self._text_vector, name, concept.category, concept.description)
        try:
            items = self._prepare(images)
        except BaseException:
            text_job.cancel()  # a bad photo: the text vector is not needed (if it already runs, it is dropped)
            raise
        text_vec = text_job.result()
        record_ids = [_image_record_id(cid, p.sha) for p in items]
        with self._lock:
            if self._find(name) is not None:
                raise DuplicateConceptError(f"Concept <{name}> already exists for tenant {self.tenant!r}")
            new_files = [p.sha for p in items if not self.images.exists(p.sha)]
            with self._journal(record_ids, new_files):
                try:
                    concept.images = self._write_images(cid, items)
                    self._concepts.add(ids=[cid], embeddings=[text_vec], metadatas=[self._to_metadata(concept)])
                except BaseException:
                    self._rollback(record_ids, new_files)
                    raise
        return concept

    def _rollback(self, record_ids: Sequence[str], shas: Sequence[str]) -> None:
        try:
            self._reconcile(record_ids, shas)
        except Exception:  # noqa: BLE001 - the journal stays and the next open retries
            log.exception("Rollback failed; the next open of the memory will finish it")
            raise

    def add_images(self, name: str, images: ImageSource | Sequence[ImageSource]) -> Concept:
        """Add reference images to an existing concept (images it already has are skipped)."""
        if self._find(name) is None:
            raise self._unknown(name)
        items = self._prepare(images)
        with self._lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            have = {i.sha256 for i in concept.images}
            items = [p for p in items if p.sha not in have]
            if not items:
                return concept
            record_ids = [_image_record_id(concept.id, p.sha) for p in items]
            new_files = [p.sha for p in items if not self.images.exists(p.sha)]
            with self._journal(record_ids, new_files):
                try:
                    concept.images = concept.images + self._write_images(concept.id, items)
                    concept.updated_at = datetime.now(timezone.utc)
                    self._concepts.update(ids=[concept.id], metadatas=[self._to_metadata(concept)])
                except BaseException:
                    self._rollback(record_ids, new_files)
                    raise
        return concept

    def _resolve_shas(self, concept: Concept, sha256s: Iterable[str]) -> list[str]:
        have = [i.sha256 for i in concept.images]
        out: list[str] = []
        for s in sha256s:
            s = str(s).lower()
            matches = [h for h in have if h.startswith(s)] if len(s) >= 6 else []
            if len(matches) != 1:
                why = "matches no image" if not matches else "is ambiguous"
                raise InvalidImageError(f"Reference image {s!r} of <{concept.name}> {why} (use a sha256 or a unique prefix of 6+ chars)")
            out.append(matches[0])
        return sorted(set(out))

    def remove_images(self, name: str, sha256s: Iterable[str]) -> Concept:
        """Remove reference images (by sha256 or unique prefix); a concept keeps at least one image."""
        with self._lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            drop = self._resolve_shas(concept, sha256s)
            keep = [i for i in concept.images if i.sha256 not in drop]
            if not keep:
                raise InvalidImageError(f"Cannot remove every reference image of <{concept.name}>; delete the concept instead")
            record_ids = [_image_record_id(concept.id, s) for s in drop]
            with self._journal(record_ids, drop):
                concept.images = keep
                concept.updated_at = datetime.now(timezone.utc)
                self._concepts.update(ids=[concept.id], metadatas=[self._to_metadata(concept)])  # commit
                self._reconcile(record_ids, drop)
        return concept

    def update(
        self,
        name: str,
        *,
        description: str | None = None,
        category: str | None = None,
        identity: Identity | None = None,
        tree: dict | None = None,
        adapter: str | None = None,
    ) -> Concept:
        """Edit the text fields of a concept; ``None`` leaves a field as it is."""
        with self._lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            if description is not None:
                concept.description = description
            if identity is not None:
                concept.identity = identity
            if category is not None:
                concept.identity = (concept.identity or Identity(category=category)).model_copy(update={"category": category})
            if tree is not None:
                concept.tree = tree
            if adapter is not None:
                concept.adapter = adapter or None
            concept.updated_at = datetime.now(timezone.utc)
            kwargs: dict[str, Any] = {"ids": [concept.id], "metadatas": [self._to_metadata(concept)]}
            if description is not None or category is not None or identity is not None:
                kwargs["embeddings"] = [self._text_vector(concept.name, concept.category, concept.description)]
            self._concepts.update(**kwargs)
        return concept

    def rename(self, old: str, new: str) -> Concept:
        """Rename a concept (its id, images and adapter routing stay)."""
        new_name = normalize_name(new)
        with self._lock:
            concept = self._find(old)
            if concept is None:
                raise self._unknown(old)
            other = self._find(new_name)
            if other is not None and other.id != concept.id:
                raise DuplicateConceptError(f"Cannot rename <{concept.name}> to <{new_name}>: that name is taken")
            concept.name = new_name
            concept.updated_at = datetime.now(timezone.utc)
            self._concepts.update(
                ids=[concept.id],
                metadatas=[self._to_metadata(concept)],
                embeddings=[self._text_vector(concept.name, concept.category, concept.description)],
            )
        return concept

    def delete(self, name: str) -> None:
        """Remove the concept, its image records and embeddings, and image files no other concept uses."""
        with self._lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            shas = [i.sha256 for i in concept.images]
            record_ids = [_image_record_id(concept.id, s) for s in shas]
            with self._journal(record_ids, shas):
                self._concepts.delete(ids=[concept.id])  # commit: from here on the concept is gone
                self._reconcile(record_ids, shas)

    # -- reading -----------------------------------------------------------------------------------------
    def get(self, name_or_id: str) -> Concept:
        """The concept by name (``bo`` / ``<bo>``, any case) or id; UnknownConceptError with suggestions."""
        concept = self._find(name_or_id)
        if concept is None:
            raise self._unknown(name_or_id)
        return concept

    def exists(self, name: str) -> bool:
        try:
            return self._find(name) is not None
        except InvalidConceptNameError:
            return False

    def list(self) -> list[Concept]:  # noqa: A003 - the API name the graph and tools use
        got = self._concepts.get(include=["metadatas"])
        concepts = [self._to_concept(i, m) for i, m in zip(got["ids"], got["metadatas"])]
        return sorted(concepts, key=lambda c: c.name.lower())

    def __len__(self) -> int:
        return self._concepts.count()

    def reference_image_paths(self, name: str) -> list[Path]:
        return [Path(i.path) for i in self.get(name).images]

    def concept_embedding(self, name: str) -> np.ndarray:
        """Mean of the concept's reference-image embeddings, L2-normalized (for adapter routing)."""
        concept = self.get(name)
        got = self._imgs.get(ids=[_image_record_id(concept.id, i.sha256) for i in concept.images], include=["embeddings"])
        vecs = np.asarray(got["embeddings"], dtype=np.float32)
        if vecs.size == 0:
            raise InvalidImageError(f"<{concept.name}> has no stored image embeddings; re-add its images")
        mean = vecs.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    # -- recall ------------------------------------------------------------------------------------------
    def recall_by_text(self, text: str) -> list[RecallHit]:
        """Concepts whose names are mentioned in ``text`` (``<bo>`` or ``bo``; whole words, any case).

        "bo" in "bottle" or "bo_x" is not a mention; "bo's", "(bo)" and "<BO>" are.
        """
        if not text:
            return []
        words: set[str] = set()
        for w in _WORD_RE.findall(text.lower()):
            w = w.strip("-")
            if w:
                words.add(w)
                words.update(p for p in w.split("-") if p)
        if not words:
            return []
        got = self._concepts.get(where={"name_lower": {"$in": sorted(words)}}, include=["metadatas"])
        hits = []
        for cid, md in zip(got["ids"], got["metadatas"]):
            pat = re.compile(rf"(?<![\w]){re.escape(md['name_lower'])}(?![\w])", re.IGNORECASE)
            if pat.search(text):
                hits.append(RecallHit(concept=self._to_concept(cid, md), score=1.0, matched_by=["name"]))
        return sorted(hits, key=lambda h: text.lower().find(h.concept.name.lower()))

    def _query_image_vector(self, vec: np.ndarray, top_k: int, threshold: float) -> list[tuple[str, float]]:
        k = max(top_k * 5, 20)  # several images per concept: over-fetch, then aggregate per concept
        # The concept comes from the record id (_concept_of): fetching the records' metadata cost
        # ~1.8 ms of a ~5 ms query at 10k concepts (benchmarks/memory_query.py).
        res = self._imgs.query(query_embeddings=[np.asarray(vec, dtype=np.float32).tolist()], n_results=k,
                               include=["distances"])
        best: dict[str, float] = {}
        for rid, dist in zip(res["ids"][0], res["distances"][0]):
            sim = 1.0 - float(dist)
            cid = _concept_of(rid)
            if sim >= threshold and sim > best.get(cid, -2.0):
                best[cid] = sim
        return sorted(best.items(), key=lambda kv: -kv[1])

    def recall_by_image(
        self, image: ImageSource, *, top_k: int | None = None, threshold: float | None = None
    ) -> list[RecallHit]:
        """Concepts whose reference images are nearest to ``image`` (max cosine per concept), best first.

        Open set: only concepts at or above ``threshold`` (default ``settings.recall_threshold``) come back,
        so a photo of nothing known returns ``[]`` rather than the K least-bad concepts.
        """
        top_k = top_k or self.settings.recall_top_k
        threshold = self.settings.recall_threshold if threshold is None else threshold
        img = load_image(image)
        vec = self.image_embedder.embed_images([img])[0]
        return self.recall_by_embedding(vec, top_k=top_k, threshold=threshold)

    def recall_by_embedding(
        self, embedding: np.ndarray, *, top_k: int | None = None, threshold: float | None = None
    ) -> list[RecallHit]:
        """:meth:`recall_by_image` for an image already embedded with this memory's image encoder."""
        top_k = top_k or self.settings.recall_top_k
        threshold = self.settings.recall_threshold if threshold is None else threshold
        ranked = self._query_image_vector(np.asarray(embedding, dtype=np.float32), top_k, threshold)
        hits: list[RecallHit] = []
        start = 0
        while len(hits) < top_k and start < len(ranked):
            # Fetch only the concept records we may return; image records of an uncommitted
            # registration have no concept record and are skipped (then the next ranked ones are fetched).
            window = ranked[start : start + top_k - len(hits)]
            start += len(window)
            got = self._concepts.get(ids=[cid for cid, _ in window], include=["metadatas"])
            by_id = dict(zip(got["ids"], got["metadatas"]))
            hits += [
                RecallHit(concept=self._to_concept(cid, by_id[cid]), score=sim, matched_by=["image"])
                for cid, sim in window
                if cid in by_id
            ]
        return hits

    def recall_by_description(self, text: str, *, top_k: int | None = None, threshold: float = DEFAULT_TEXT_THRESHOLD) -> list[RecallHit]:
        """Concepts whose name + category + description are semantically close to ``text``."""
        n = self._concepts.count()
        if not text or n == 0:
            return []
        top_k = top_k or self.settings.recall_top_k
        vec = self.text_embedder.embed_texts([text])[0]
        res = self._concepts.query(query_embeddings=[vec.tolist()], n_results=min(n, top_k), include=["metadatas", "distances"])
        return [
            RecallHit(concept=self._to_concept(cid, md), score=1.0 - float(d), matched_by=["text"])
            for cid, md, d in zip(res["ids"][0], res["metadatas"][0], res["distances"][0])
            if 1.0 - float(d) >= threshold
        ]

    def recall(
        self,
        text: str | None = None,
        image: ImageSource | None = None,
        *,
        hybrid: bool = False,
        top_k: int | None = None,
        threshold: float | None = None,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    ) -> list[RecallHit]:
        """Candidates for a question: names mentioned in ``text`` + image neighbours of ``image``.

        ``hybrid=True`` also adds concepts whose description is semantically close to ``text``
        (cosine >= ``text_threshold``). Hits of the same concept are merged: ``matched_by`` lists every
        channel, ``score`` is the best one (a name mention scores 1.0). Name mentions come first.
        """
        merged: dict[str, RecallHit] = {}

        def merge(hits: list[RecallHit]) -> None:
            for h in hits:
                cur = merged.get(h.concept.id)
                if cur is None:
                    merged[h.concept.id] = h.model_copy(deep=True)
                else:
                    cur.matched_by = cur.matched_by + [m for m in h.matched_by if m not in cur.matched_by]
                    cur.score = max(cur.score, h.score)

        if text:
            merge(self.recall_by_text(text))
        if image is not None:
            merge(self.recall_by_image(image, top_k=top_k, threshold=threshold))
        if hybrid and text:
            merge(self.recall_by_description(text, top_k=top_k, threshold=text_threshold))
        return sorted(merged.values(), key=lambda h: ("name" not in h.matched_by, -h.score))


__all__ = ["ConceptMemory", "normalize_name", "tenant_key"]
