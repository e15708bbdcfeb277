"""ConceptMemory: a tenant's personal concepts with their reference images: CRUD, journal and recall.

Usage::

    from slc.memory import ConceptMemory
    mem = ConceptMemory(tenant="alice")                       # embedded Chroma under settings.data_dir
    bo = mem.add("<bo>", ["bo1.jpg", "bo2.jpg"], description="my golden retriever", category="dog")
    mem.recall_by_text("Is <bo> in the garden?")              # -> [RecallHit(concept=bo, matched_by=["name"])]
    mem.recall_by_image("photo.jpg")                          # nearest concepts above settings.recall_threshold
    mem.rename("bo", "bobo"); mem.delete("bobo")

What lives where (why this shape):
- The vectors sit behind :mod:`slc.memory.index` (``VectorIndex``, ``IndexBackend``): two indexes per
  tenant, ``concepts`` and ``images``, opened on a backend from :mod:`slc.memory.backends` (Chroma today,
  :mod:`slc.memory.chroma_index`, read through in-process copies, :mod:`slc.memory.mirror`: name lookups
  and image queries never scan or wait on the store). This class holds the rules and never calls a store
  directly. A process serving many tenants passes one ``backend`` to every tenant's memory (one
  connection and one bounded cache of copies, not one per tenant).
- Record layout (concept record = commit marker, image records ``<concept id>:<sha256>``):
  :mod:`slc.memory.records`. Names and tenant keys: :mod:`slc.memory.names`.
- Image files: a content-addressed :class:`~slc.memory.images.ImageStore` per tenant under
  ``settings.images_dir``, so the memory does not depend on the user's original files.

Integrity:
- Every image is validated, normalized and embedded before anything is written, so a bad image or an
  encoder failure stores nothing.
- Writes run under the tenant's file lock and journal (:mod:`slc.memory.journal`); a crash (even SIGKILL)
  is undone by the next ``ConceptMemory`` opened on the same data: records not listed by a committed
  concept and files no record uses are removed. :meth:`ConceptMemory.fsck` does the same for the whole
  tenant.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slc.agent.errors import (
    AdapterBankError,
    DuplicateConceptError,
    InvalidConceptNameError,
    InvalidImageError,
    SLCError,
    UnknownConceptError,
    check_question,
)
from slc.agent.images import ImageSource, image_list, load_image
from slc.agent.settings import Settings, get_settings
from slc.memory.backends import open_backend
from slc.memory.embedders import ImageEmbedder, TextEmbedder, embedder_named, get_image_embedder, get_text_embedder
from slc.memory.images import ImageStore, stored_size
from slc.memory.index import IndexBackend, Metadata
from slc.memory.journal import WriteJournal
from slc.memory.names import mention_candidates, mentions, normalize_name, tenant_key
from slc.memory.records import (
    concept_of,
    concept_record,
    image_record,
    image_record_id,
    is_concept_id,
    listed_shas,
    new_concept_id,
    to_concept,
)
from slc.memory.types import Concept, Identity, RecallHit, ReferenceImage

if TYPE_CHECKING:
    from PIL import Image

    from slc.agent.adapters import AdapterBank

    from slc.memory.chroma_index import ChromaClient

log = logging.getLogger(__name__)

#: Hybrid recall: a description counts as matching the question from this cosine similarity up.
DEFAULT_TEXT_THRESHOLD = 0.5

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """One small pool per process for encoder work that overlaps other work of the same call."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slc-memory")
        return _POOL


def _same_encoder(ref: object, name: str) -> bool:
    """``ref`` (an encoder's name, id or folder) and ``name`` are the same encoder (equal, or one folder)."""
    if not isinstance(ref, (str, Path)) or not str(ref):
        return False
    if str(ref) == name:
        return True
    a, b = Path(str(ref)).expanduser(), Path(name).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


class _Prepared:
    __slots__ = ("image", "data", "sha", "embedding")

    def __init__(self, image: "Image.Image", data: bytes, sha: str) -> None:
        self.image, self.data, self.sha = image, data, sha
        self.embedding: np.ndarray | None = None


class ConceptMemory:
    """One tenant's concept memory (see the module docstring for storage and integrity).

    ``backend``: the index backend to run on, owned by the caller (shared by the memories of many tenants
    and not closed by :meth:`close`); None = open one from ``settings``. ``client``: a Chroma client the
    caller opened, used through the Chroma backend. Embedders left None are loaded from settings on first
    use, so a memory without an image encoder still serves names, descriptions and lists.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tenant: str | None = None,
        image_embedder: ImageEmbedder | None = None,
        text_embedder: TextEmbedder | None = None,
        backend: IndexBackend | None = None,
        client: "ChromaClient | None" = None,
    ) -> None:
        if backend is not None and client is not None:
            raise ValueError("Pass a backend or a client, not both")
        self.settings = settings or get_settings()
        self.tenant = tenant if tenant is not None else self.settings.tenant
        self.key = tenant_key(self.tenant)
        self._image_embedder = image_embedder
        self._text_embedder = text_embedder
        self._owns_backend = backend is None
        self._backend = backend if backend is not None else open_backend(self.settings, client=client)
        self.images = ImageStore(self.settings.images_dir / self.key)
        self._journal = WriteJournal(self.settings.data_dir / "memory-journal" / self.key, self._backend.lock_path(self.key))
        self._concepts = self._backend.open_index(self.key, "concepts")
        self._imgs = self._backend.open_index(self.key, "images")
        self._recover()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> "ConceptMemory":
        return cls(settings, **kwargs)

    def close(self) -> None:
        """Release the backend this memory opened (a backend or client passed in by the caller stays open)."""
        if self._owns_backend:
            self._backend.close()

    def __enter__(self) -> "ConceptMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encoders ----------------------------------------------------------------------------------------
    @property
    def image_embedder(self) -> ImageEmbedder:
        if self._image_embedder is None:
            self._image_embedder = get_image_embedder(self.settings)
        return self._image_embedder

    @property
    def text_embedder(self) -> TextEmbedder:
        if self._text_embedder is None:
            self._text_embedder = get_text_embedder(self.settings)
        return self._text_embedder

    def _text_vector(self, name: str, category: str | None, description: str) -> np.ndarray:
        text = " ".join(p for p in (name, f"({category})" if category else "", description) if p)
        return self.text_embedder.embed_texts([text])[0]

    # -- records -----------------------------------------------------------------------------------------
    def _concept(self, record_id: str, metadata: Metadata) -> Concept:
        return to_concept(record_id, metadata, tenant=self.tenant, images=self.images)

    def _commit(self, concept: Concept, vector: np.ndarray | None = None) -> None:
        """Write the concept record of an existing concept: the step that makes a change visible."""
        self._concepts.update([concept_record(concept, vector)])

    def _find(self, name_or_id: str) -> Concept | None:
        if is_concept_id(name_or_id):
            got = self._concepts.get([name_or_id])
            if got:
                return self._concept(got[0].id, got[0].metadata)
        name = normalize_name(name_or_id)
        got = self._concepts.get(where={"name_lower": name.lower()})
        return self._concept(got[0].id, got[0].metadata) if got else None

    def _unknown(self, name: str) -> UnknownConceptError:
        try:
            bare = normalize_name(name)
        except InvalidConceptNameError:
            bare = str(name)
        lower = {str(r.metadata["name"]).lower(): str(r.metadata["name"]) for r in self._concepts.get()}
        close = difflib.get_close_matches(bare.lower(), list(lower), n=3, cutoff=0.6)
        return UnknownConceptError(bare, [lower[c] for c in close])

    # -- integrity ---------------------------------------------------------------------------------------
    def _reconcile(self, record_ids: Sequence[str], shas: Sequence[str]) -> int:
        """Delete image records whose concept does not list them, then files no record uses. Lock held."""
        got = self._imgs.get(record_ids)
        cids = sorted({str(r.metadata["concept_id"]) for r in got})
        listed = {c.id: listed_shas(c.metadata) for c in self._concepts.get(cids)}
        stale = [r.id for r in got if r.metadata["sha256"] not in listed.get(str(r.metadata["concept_id"]), set())]
        self._imgs.delete(stale)
        removed = len(stale)
        for sha in set(shas):
            if not self._imgs.get(where={"sha256": sha}, limit=1, metadata=False):
                removed += int(self.images.delete(sha))
        return removed

    def _recover(self) -> None:
        """Replay journals and remove temp files left by crashed writers, if no writer is busy right now.

        Nothing to do (the usual case: one directory listing) without a journal: every write to the image
        store and the indexes runs inside a journal entry, so only a write that left one can leave debris."""
        if not self._journal.pending():
            return
        with self._journal.if_idle() as idle:
            if idle:
                self.images.clean_temp_files()
                self._journal.replay(self._reconcile)

    def _rollback(self, record_ids: Sequence[str], shas: Sequence[str]) -> None:
        try:
            self._reconcile(record_ids, shas)
        except Exception:  # noqa: BLE001 - the journal stays and the next open retries
            log.exception("Rollback failed; the next open of the memory will finish it")
            raise

    def fsck(self) -> int:
        """Full consistency pass for this tenant: orphan image records and unused files are removed.
        Returns how many things were removed. Cost grows with the memory; opening a memory does the cheap one."""
        with self._journal.lock:
            n = self._reconcile([r.id for r in self._imgs.get(metadata=False)], [])
            used = {r.metadata["sha256"] for r in self._imgs.get()}
            for sha in list(self.images):
                if sha not in used:
                    n += int(self.images.delete(sha))
            return n

    # -- writing -----------------------------------------------------------------------------------------
    def _prepare(self, images: ImageSource | Sequence[ImageSource]) -> list[_Prepared]:
        sources = image_list(images)
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
        self._imgs.add([image_record(cid, p.sha, p.embedding) for p in items])  # type: ignore[arg-type]
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
        cid = new_concept_id()
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
        record_ids = [image_record_id(cid, p.sha) for p in items]
        with self._journal.lock:
            if self._find(name) is not None:
                raise DuplicateConceptError(f"Concept <{name}> already exists for tenant {self.tenant!r}")
            new_files = [p.sha for p in items if not self.images.exists(p.sha)]
            with self._journal.entry(record_ids, new_files):
                try:
                    concept.images = self._write_images(cid, items)
                    self._concepts.add([concept_record(concept, text_vec)])  # commit
                except BaseException:
                    self._rollback(record_ids, new_files)
                    raise
        return concept

    def add_images(self, name: str, images: ImageSource | Sequence[ImageSource]) -> Concept:
        """Add reference images to an existing concept (images it already has are skipped)."""
        if self._find(name) is None:
            raise self._unknown(name)
        items = self._prepare(images)
        with self._journal.lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            have = {i.sha256 for i in concept.images}
            items = [p for p in items if p.sha not in have]
            if not items:
                return concept
            record_ids = [image_record_id(concept.id, p.sha) for p in items]
            new_files = [p.sha for p in items if not self.images.exists(p.sha)]
            with self._journal.entry(record_ids, new_files):
                try:
                    concept.images = concept.images + self._write_images(concept.id, items)
                    concept.updated_at = datetime.now(timezone.utc)
                    self._commit(concept)
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
        with self._journal.lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            drop = self._resolve_shas(concept, sha256s)
            keep = [i for i in concept.images if i.sha256 not in drop]
            if not keep:
                raise InvalidImageError(f"Cannot remove every reference image of <{concept.name}>; delete the concept instead")
            record_ids = [image_record_id(concept.id, s) for s in drop]
            with self._journal.entry(record_ids, drop):
                concept.images = keep
                concept.updated_at = datetime.now(timezone.utc)
                self._commit(concept)
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
        with self._journal.lock:
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
            text_changed = description is not None or category is not None or identity is not None
            self._commit(concept, self._text_vector(concept.name, concept.category, concept.description) if text_changed else None)
        return concept

    def rename(self, old: str, new: str) -> Concept:
        """Rename a concept (its id, images and adapter routing stay)."""
        new_name = normalize_name(new)
        with self._journal.lock:
            concept = self._find(old)
            if concept is None:
                raise self._unknown(old)
            other = self._find(new_name)
            if other is not None and other.id != concept.id:
                raise DuplicateConceptError(f"Cannot rename <{concept.name}> to <{new_name}>: that name is taken")
            concept.name = new_name
            concept.updated_at = datetime.now(timezone.utc)
            self._commit(concept, self._text_vector(concept.name, concept.category, concept.description))
        return concept

    def delete(self, name: str) -> None:
        """Remove the concept, its image records and embeddings, and image files no other concept uses."""
        with self._journal.lock:
            concept = self._find(name)
            if concept is None:
                raise self._unknown(name)
            shas = [i.sha256 for i in concept.images]
            record_ids = [image_record_id(concept.id, s) for s in shas]
            with self._journal.entry(record_ids, shas):
                self._concepts.delete([concept.id])  # commit: from here on the concept is gone
                self._reconcile(record_ids, shas)

    def purge(self) -> int:
        """Erase this tenant's whole memory: every concept, image record, embedding and reference image file.

        Returns how many concepts it held. All-or-nothing like every write: the concept records go first
        (from then on no concept is visible), and a crash after that is finished by the journal's replay."""
        with self._journal.lock:
            concepts = self._concepts.get(metadata=False)
            images = self._imgs.get()
            record_ids = [r.id for r in images]
            with self._journal.entry(record_ids, sorted({str(r.metadata["sha256"]) for r in images})):
                self._concepts.delete([r.id for r in concepts])  # commit
                self._imgs.delete(record_ids)
                self.images.purge()
        return len(concepts)

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
        concepts = [self._concept(r.id, r.metadata) for r in self._concepts.get()]
        return sorted(concepts, key=lambda c: c.name.lower())

    def __len__(self) -> int:
        return self._concepts.count()

    def reference_image_paths(self, name: str) -> list[Path]:
        return [Path(i.path) for i in self.get(name).images]

    def _encodes_as(self, embedder: str) -> bool:
        """Whether this memory's image encoder is ``embedder`` (a name or an HF id/folder), without loading it."""
        mine = self._image_embedder
        refs = [getattr(mine, "name", None), getattr(mine, "model_ref", None)] if mine is not None else [self.settings.image_encoder]
        return any(_same_encoder(r, embedder) for r in refs)

    def concept_embedding(self, name: str, *, bank: "AdapterBank | None" = None) -> np.ndarray:
        """Mean of the concept's reference-image embeddings, L2-normalized (for adapter routing).

        ``bank``: the adapter bank the caller routes with. Its centroids live in the space of the embedder it
        records (``manifest.embedder``; ``object-histogram`` is what ``slc train bank`` defaults to): when that
        is not this memory's image encoder and the stored vectors do not fit the centroids, the concept's stored
        reference photos are embedded with the bank's embedder (:func:`slc.memory.embedders.embedder_named`), so
        a trained bank works whatever encoder the memory recalls with. Otherwise: the stored vectors.
        """
        concept = self.get(name)
        embedder = bank.manifest.embedder if bank is not None else None
        if bank is None or not embedder or self._encodes_as(embedder):
            return self._stored_embedding(concept)
        try:
            stored = self._stored_embedding(concept)
        except InvalidImageError:
            stored = None
        if stored is not None and stored.shape[0] == bank.dim:  # the same space under another name
            return stored
        return self._embed_references(concept, embedder)

    def _stored_embedding(self, concept: Concept) -> np.ndarray:
        got = self._imgs.get([image_record_id(concept.id, i.sha256) for i in concept.images], vectors=True, metadata=False)
        if not got:
            raise InvalidImageError(f"<{concept.name}> has no stored image embeddings; re-add its images")
        mean = np.stack([r.vector for r in got]).mean(axis=0)  # type: ignore[misc]
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def _embed_references(self, concept: Concept, embedder: str) -> np.ndarray:
        if not concept.images:
            raise InvalidImageError(f"<{concept.name}> has no stored images; re-add its images")
        try:
            model = embedder_named(embedder, self.settings.embedding_device)
        except SLCError as exc:
            raise AdapterBankError(
                f"The adapter bank routes concepts with image encoder {embedder!r} (recorded when it was trained), "
                f"which cannot be loaded here ({exc}). Set SLC_IMAGE_ENCODER={embedder} or retrain the bank with "
                "`slc train bank --embedder <your SLC_IMAGE_ENCODER>`.") from exc
        vectors = model.embed_images([load_image(i.path) for i in concept.images])
        mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    # -- recall ------------------------------------------------------------------------------------------
    def recall_by_text(self, text: str) -> list[RecallHit]:
        """Concepts whose names are mentioned in ``text`` (``<bo>`` or ``bo``; whole words, any case).

        "bo" in "bottle" or "bo_x" is not a mention; "bo's", "(bo)" and "<BO>" are.
        """
        check_question(text, self.settings.max_question_chars)
        words = mention_candidates(text) if text else set()
        if not words:
            return []
        hits = [
            RecallHit(concept=self._concept(r.id, r.metadata), score=1.0, matched_by=["name"])
            for r in self._concepts.get(where={"name_lower": sorted(words)})
            if mentions(text, str(r.metadata["name_lower"]))
        ]
        return sorted(hits, key=lambda h: text.lower().find(h.concept.name.lower()))

    def _query_image_vector(self, vec: np.ndarray, top_k: int, threshold: float) -> list[tuple[str, float]]:
        k = max(top_k * 5, 20)  # several images per concept: over-fetch, then aggregate per concept
        best: dict[str, float] = {}
        for hit in self._imgs.query(vec, k):
            cid = concept_of(hit.id)  # no metadata fetch: the record id names the concept
            if hit.similarity >= threshold and hit.similarity > best.get(cid, -2.0):
                best[cid] = hit.similarity
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
            by_id = {r.id: r.metadata for r in self._concepts.get([cid for cid, _ in window])}
            hits += [
                RecallHit(concept=self._concept(cid, by_id[cid]), score=sim, matched_by=["image"])
                for cid, sim in window
                if cid in by_id
            ]
        return hits

    def recall_by_description(self, text: str, *, top_k: int | None = None, threshold: float = DEFAULT_TEXT_THRESHOLD) -> list[RecallHit]:
        """Concepts whose name + category + description are semantically close to ``text``."""
        check_question(text, self.settings.max_question_chars)
        n = self._concepts.count()
        if not text or n == 0:
            return []
        top_k = top_k or self.settings.recall_top_k
        vec = self.text_embedder.embed_texts([text])[0]
        return [
            RecallHit(concept=self._concept(h.id, h.metadata or {}), score=h.similarity, matched_by=["text"])
            for h in self._concepts.query(vec, min(n, top_k), metadata=True)
            if h.similarity >= threshold
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

        THE merge of recall channels: callers get at most one hit per concept. ``hybrid=True`` also adds
        concepts whose description is semantically close to ``text`` (cosine >= ``text_threshold``). Hits
        of the same concept are merged: ``matched_by`` lists every channel, ``score`` is the best one (a name
        mention scores 1.0). Name mentions come first. A ``text`` longer than ``settings.max_question_chars`` is
        refused (:class:`~slc.agent.errors.QuestionTooLongError`) before any channel runs.
        """
        check_question(text, self.settings.max_question_chars)
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


__all__ = ["DEFAULT_TEXT_THRESHOLD", "ConceptMemory"]
