"""A turn's query photo: what a caller may send as the graph's ``image``, and how it becomes a stored sha256.

Why at the graph's entry: LangGraph Server, Studio, the tools and in-process callers all send the same
input, so the graph itself takes the photo in (:func:`admit_photo`, called by
:class:`~slc.graphs.guard.GuardedGraph` before the first node): it is validated by the project's
``load_image`` rules, stored in the query-photo :class:`~slc.memory.images.ImageStore` OF THE RUN'S TENANT,
and from then on only its content hash exists in input, state, checkpoints and traces. A bad photo raises
InvalidImageError out of ``invoke`` before any run is traced. What a caller may send:

- the sha256 of a photo stored for the same tenant (another tenant's hash is "no stored photo");
- a ``data:image/...;base64,`` URL, or the bare base64 of an image file (what a remote client sends);
- a path as a string (a served graph's input, a tool's argument): read only under the allowed roots,
  :func:`slc.graphs.paths.allowed_path`;
- in-process only, a :class:`pathlib.Path`, bytes or a PIL image: the caller's own photo
  (:func:`photo_input` makes a string path from ``ask``/``run_turn`` such a Path).

Every photo but an already decoded PIL image is bounded by ``settings.max_photo_bytes`` BEFORE it is
decoded or read (a 500 MB upload is refused from its length alone); a photo inside a chat message
(:mod:`slc.graphs.message_photos`) comes here too. Errors never echo the payload: it is a user's photo.

A turn needs the same photo in three nodes (decoded, and twice as a data URL for the large VLM); content
addressing makes caching them by hash always correct, and the cache keys name the store, so one tenant's
cached photo is never another's.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal, TypeVar

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
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/=\s]+$")
#: How the image files load_image reads begin (PNG, JPEG, GIF, WebP/RIFF, BMP, TIFF): what tells the bare
#: base64 of a photo from a path made of base64 letters.
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
_CACHE_SIZE = 16
#: A string photo longer than this is never taken for a path, so no error echoes it: it may be a photo in a
#: form that is not read (URL-encoded base64...). A photo's path is shorter (a file name alone is at most 255).
_PATH_MAX = 255
K = TypeVar("K")
V = TypeVar("V")
PhotoKind = Literal["sha256", "data_url", "base64", "path"]

_IMAGES: OrderedDict[tuple[str, str], Image.Image] = OrderedDict()
_PARTS: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def photo_kind(ref: str) -> PhotoKind:
    """What a string photo names: a stored photo's sha256, a data URL, bare base64 (of an image file, or any
    base64 of 256 characters or more), or (anything else) a path."""
    if _SHA_RE.match(ref):
        return "sha256"
    if ref.startswith("data:"):
        return "data_url"
    if len(ref) < 64 or not _BASE64_RE.match(ref[:4096]):
        return "path"
    if len(ref) > _PATH_MAX:  # base64 letters only, and longer than any photo's path
        return "base64"
    head = "".join(ref[:96].split())[:16]
    try:
        return "base64" if len(head) == 16 and base64.b64decode(head, validate=True).startswith(_MAGIC) else "path"
    except (binascii.Error, ValueError):
        return "path"


def photo_input(image: ImageSource | None) -> ImageSource | None:
    """The graph's ``image`` input for a photo of the in-process caller (``ask``, ``run_turn``, the CLI): a
    stored sha256, a data URL or base64 as is; any other string is a path of the caller's own, given to the
    graph as a :class:`pathlib.Path` (which only in-process callers can send)."""
    if isinstance(image, str) and photo_kind(image) == "path":
        return Path(image)
    return image


def _too_large(size: int, max_bytes: int) -> InvalidImageError:
    return InvalidImageError(
        f"Invalid image: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB a photo may have (settings "
        "max_photo_bytes / SLC_MAX_PHOTO_BYTES): send a smaller photo")


def base64_photo(payload: str, max_bytes: int, *, what: str = "<base64>") -> bytes:
    """The bytes of a base64 photo payload; one over ``max_bytes`` is refused from its length before it is
    decoded (line breaks, which some clients insert every 76 characters, are allowed for)."""
    if len(payload) > (max_bytes + 2) // 3 * 4 * 77 // 76 + 4:
        raise _too_large(len(payload) * 3 // 4, max_bytes)
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:  # never echo the payload: it is a user's photo
        raise InvalidImageError(f"Invalid image {what}: its payload is not base64 ({exc})") from None
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return data


def data_url_photo(url: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:image/...;base64,`` URL (size-bounded as :func:`base64_photo`)."""
    if not _DATA_URL_RE.match(url):  # never echo the payload: it is a user's photo
        raise InvalidImageError("Invalid image <data URL>: only data:image/<type>;base64,... URLs are accepted")
    return base64_photo(url.split(",", 1)[1], max_bytes, what="<data URL>")


def store_photo(store: ImageStore, ref: str) -> str:
    """``ref``, the sha256 of a photo in ``store`` (InvalidImageError when the store has no such photo).

    The graph's entry (:func:`admit_photo`) has already turned any input into a stored digest."""
    if not _SHA_RE.match(ref):
        raise InvalidImageError("Invalid image input: the graph's state holds a stored photo's sha256 only")
    if not store.exists(ref):
        raise InvalidImageError(
            f"There is no stored photo {ref[:12]}... for this user: send the photo itself (a data URL) or its path")
    return ref


def _file_photo(path: Path, max_bytes: int) -> Path:
    try:
        size = path.stat().st_size
    except OSError:
        return path  # load_image names the missing or unreadable file
    if size > max_bytes:
        raise _too_large(size, max_bytes)
    return path


def admit_photo(store: ImageStore, image: ImageSource, settings: Settings) -> str:
    """Store the photo a run was given (see the module docstring for what may be given) and return its sha256;
    a photo used again is touched, so the store's retention counts from its last use."""
    max_bytes = settings.max_photo_bytes
    source: ImageSource
    if isinstance(image, str):
        kind = photo_kind(image)
        if kind == "sha256":
            sha = store_photo(store, image)
            store.touch(sha)
            return sha
        if kind == "data_url":
            source = data_url_photo(image, max_bytes)
        elif kind == "base64":
            source = base64_photo(image, max_bytes)
        elif len(image) > _PATH_MAX:  # not a path, and never echoed
            raise InvalidImageError(
                f"Invalid image: a string of {len(image)} characters is neither a path, a stored photo's sha256, a "
                "data:image/...;base64 URL nor the base64 of an image file")
        else:  # PathNotAllowedError: a path from a tool or a client
            source = _file_photo(allowed_path(image, settings), max_bytes)
    elif isinstance(image, os.PathLike):
        source = _file_photo(Path(image), max_bytes)
    elif isinstance(image, (bytes, bytearray)):
        if len(image) > max_bytes:
            raise _too_large(len(image), max_bytes)
        source = image
    else:
        source = image
    sha = store.put(source).sha256
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


__all__ = ["PhotoKind", "admit_photo", "base64_photo", "data_url_photo", "forget_photos", "open_photo", "photo_input",
           "photo_kind", "photo_part", "store_photo"]
