"""A turn's query photo: what a caller may send as the graph's ``image``, and how it becomes a stored sha256.

Why at the graph's entry: LangGraph Server, Studio, the tools and in-process callers all send the same
input, so the graph itself takes the photo in (:func:`admit_photo`, called by
:class:`~slc.graphs.guard.GuardedGraph` before the first node): it is validated by the project's
``load_image`` rules, stored in the query-photo :class:`~slc.memory.images.ImageStore` OF THE RUN'S TENANT,
and from then on only its content hash exists in input, state, checkpoints and traces. A bad photo raises
InvalidImageError out of ``invoke`` before any run is traced. What a caller may send:

- the sha256 of a photo stored for the same tenant (another tenant's hash is "no stored photo");
- a ``data:image/...;base64,`` URL (what a remote client sends);
- a path as a string (a served graph's input, a tool's argument): read only under the allowed roots,
  :func:`slc.graphs.paths.allowed_path`;
- in-process only, a :class:`pathlib.Path`, bytes or a PIL image: the caller's own photo
  (:func:`photo_input` makes a string path from ``ask``/``run_turn`` such a Path).

A turn needs the same photo in three nodes (decoded, and twice as a data URL for the large VLM); content
addressing makes caching them by hash always correct, and the cache keys name the store, so one tenant's
cached photo is never another's.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from slc.agent.errors import InvalidImageError
from slc.agent.images import ImageSource
from slc.agent.large_vlm import image_part
from slc.agent.settings import Settings
from slc.graphs.paths import allowed_path
from slc.memory.images import ImageStore

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: The media types a data URL may name; keep in step with slc.graphs.tracing, which redacts such URLs.
_DATA_URL_RE = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")
_CACHE_SIZE = 16
K = TypeVar("K")
V = TypeVar("V")

_IMAGES: OrderedDict[tuple[str, str], Image.Image] = OrderedDict()
_PARTS: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def photo_input(image: ImageSource | None) -> ImageSource | None:
    """The graph's ``image`` input for a photo of the in-process caller (``ask``, ``run_turn``, the CLI): a
    stored sha256 or a data URL as is; any other string is a path of the caller's own, given to the graph
    as a :class:`pathlib.Path` (which only in-process callers can send)."""
    if isinstance(image, str) and not (_SHA_RE.match(image) or image.startswith("data:")):
        return Path(image)
    return image


def _data_url_bytes(url: str) -> bytes:
    if not _DATA_URL_RE.match(url):  # never echo the payload: it is a user's photo
        raise InvalidImageError("Invalid image <data URL>: only data:image/<type>;base64,... URLs are accepted")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"Invalid image <data URL>: its payload is not base64 ({exc})") from None


def store_photo(store: ImageStore, ref: str) -> str:
    """The sha256 of the photo ``ref`` names in ``store``: a stored digest, or a data URL stored now.

    The graph's entry (:func:`admit_photo`) has already turned any other input into a stored digest."""
    if _SHA_RE.match(ref):
        if not store.exists(ref):
            raise InvalidImageError(
                f"There is no stored photo {ref[:12]}... for this user: send the photo itself (a data URL) or its path")
        return ref
    if ref.startswith("data:"):
        return store.put(_data_url_bytes(ref)).sha256
    raise InvalidImageError("Invalid image input: give a stored photo's sha256 or a data:image/...;base64 URL")


def admit_photo(store: ImageStore, image: ImageSource, settings: Settings) -> str:
    """Store the photo a run was given (see the module docstring for what may be given) and return its sha256;
    a photo used again is touched, so the store's retention counts from its last use."""
    if isinstance(image, str) and not (_SHA_RE.match(image) or image.startswith("data:")):
        image = allowed_path(image, settings)  # PathNotAllowedError: a path from a tool or a client
    sha = store_photo(store, image) if isinstance(image, str) else store.put(image).sha256
    store.touch(sha)
    return sha


def _remember(cache: OrderedDict[K, V], key: K, value: V) -> V:
    with _CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def open_photo(store: ImageStore, sha: str) -> Image.Image:
    """The stored photo, decoded once per process while it is among the recent ones."""
    key = (str(store.root), sha)
    img = _IMAGES.get(key)
    return img if img is not None else _remember(_IMAGES, key, store.open(sha))


def forget_photos(store: ImageStore) -> None:
    """Drop this process's cached copies of ``store``'s photos (after the store is erased)."""
    root = str(store.root)
    with _CACHE_LOCK:
        for cache in (_IMAGES, _PARTS):
            for key in [k for k in cache if k[0] == root]:
                del cache[key]


def photo_part(store: ImageStore, sha: str, max_side: int) -> dict[str, Any]:
    """The photo as an ``image_url`` content part for the large VLM (a fresh dict: callers may mutate it)."""
    key = (str(store.root), sha, max_side)
    part = _PARTS.get(key) or _remember(_PARTS, key, image_part(open_photo(store, sha), max_side))
    return {"type": part["type"], "image_url": dict(part["image_url"])}


__all__ = ["admit_photo", "forget_photos", "open_photo", "photo_input", "photo_part", "store_photo"]
