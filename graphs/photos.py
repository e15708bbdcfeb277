"""A turn's query photo: what a caller may send as the graph's ``image``, and how it becomes a stored sha256.

Why in the graph (the recall node), not in the caller: LangGraph Server, Studio and in-process callers all
send the same input, so the graph itself validates the photo (the project's ``load_image`` rules, through
the query-photo :class:`~slc.memory.images.ImageStore`) and keeps only its content hash in state; a bad
photo raises InvalidImageError out of ``invoke``. The input may be the sha256 of a stored photo, a path,
or a ``data:image/...;base64,`` URL (what :func:`photo_input` makes of bytes and PIL images in-process).

A turn needs the same photo in three nodes (decoded, and twice as a data URL for the large VLM); content
addressing makes caching them by hash always correct.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from slc.agent.errors import InvalidImageError
from slc.agent.images import ImageSource
from slc.agent.large_vlm import image_part
from slc.memory.images import ImageStore

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: The media types a data URL may name; keep in step with slc.graphs.tracing, which redacts such URLs.
_DATA_URL_RE = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")
_CACHE_SIZE = 16
K = TypeVar("K")
V = TypeVar("V")

_IMAGES: OrderedDict[tuple[str, str], Image.Image] = OrderedDict()
_PARTS: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def photo_input(image: ImageSource | None) -> str | None:
    """The graph's ``image`` input for a caller's photo: a path or sha256 as is, bytes and PIL images as a
    PNG/original-bytes data URL (the graph stores it; only the hash stays in state)."""
    if image is None or isinstance(image, str):
        return image
    if isinstance(image, Path):
        return str(image)
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data, mime = buf.getvalue(), "png"
    else:
        data, mime = bytes(image), "octet-stream"  # any format: the graph reads it as load_image would
    return f"data:image/{mime};base64," + base64.b64encode(data).decode("ascii")


def _data_url_bytes(url: str) -> bytes:
    if not _DATA_URL_RE.match(url):  # never echo the payload: it is a user's photo
        raise InvalidImageError("Invalid image <data URL>: only data:image/<type>;base64,... URLs are accepted")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"Invalid image <data URL>: its payload is not base64 ({exc})") from None


def store_photo(store: ImageStore, ref: str) -> str:
    """The sha256 of the photo ``ref`` names, storing it first unless it is already a stored digest."""
    if _SHA_RE.match(ref) and store.exists(ref):
        return ref
    source: ImageSource = _data_url_bytes(ref) if ref.startswith("data:") else Path(ref)
    return store.put(source).sha256  # InvalidImageError naming the file and the reason


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


def photo_part(store: ImageStore, sha: str, max_side: int) -> dict[str, Any]:
    """The photo as an ``image_url`` content part for the large VLM (a fresh dict: callers may mutate it)."""
    part = _PARTS.get((sha, max_side)) or _remember(_PARTS, (sha, max_side), image_part(open_photo(store, sha), max_side))
    return {"type": part["type"], "image_url": dict(part["image_url"])}


__all__ = ["open_photo", "photo_input", "photo_part", "store_photo"]
