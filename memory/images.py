"""The content-addressed store of reference images (images are read through :mod:`slc.agent.images`).

:class:`ImageStore` keeps reference images inside the data directory (``<data_dir>/images``) so the
memory is self-contained: the user's original files can move or vanish. Files are named by the sha256 of
the stored bytes (``ab/abcdef....jpg``): a JPEG/PNG file that needs no normalization is kept as the user's
own bytes with its metadata (EXIF GPS position, camera serial, XMP, text chunks) stripped; anything else is
re-encoded (JPEG q95 by default, PNG with ``format="png"`` for lossless). Storing the same file twice
stores it once, and writes are atomic (temp file + ``os.replace``), so a crash never leaves a
half-written file under a valid name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from slc.agent.errors import InvalidImageError
from slc.agent.images import (
    DEFAULT_MAX_PIXELS,
    ImageSource,
    decode_image,
    exif_orientation,
    load_image,
    normalize_image,
)
from slc.memory.types import ReferenceImage

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def encode_png(image: Image.Image) -> bytes:
    """Lossless normalized form: PNG, no metadata. Deterministic for a given Pillow version."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def encode_jpeg(image: Image.Image) -> bytes:
    """Compact normalized form: JPEG quality 95, no chroma subsampling, no metadata (visually lossless).
    ~15x faster to write than PNG for a photo (about 1.5 ms vs 25 ms at 512x384 here) and 5x smaller."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, subsampling=0, optimize=False)
    return buf.getvalue()


_ENCODERS = {"jpeg": (encode_jpeg, ".jpg"), "png": (encode_png, ".png")}

# JPEG segments kept when storing a user's original file: JFIF header, ICC colour profile (APP2), Adobe
# colour transform (APP14). Every other APPn (EXIF with GPS position and camera serial, XMP, IPTC,
# MakerNotes) and comments go.
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
# PNG chunks dropped from a user's original file: text (may hold anything), EXIF, modification time.
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_jpeg_metadata(data: bytes) -> bytes | None:
    """The JPEG without metadata segments, compressed data untouched; None if the layout is not a plain
    single JPEG (e.g. trailing MPO/depth images after the end marker), so the caller re-encodes instead."""
    if data[:2] != b"\xff\xd8":
        return None
    out, i, n = [b"\xff\xd8"], 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data (and tables between progressive scans)
            rest = data[i:]
            if not rest.endswith(b"\xff\xd9") or rest.find(b"\xff\xd9") != len(rest) - 2:
                return None
            out.append(rest)
            return b"".join(out)
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > n:
            return None
        if not ((0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP) or marker == 0xFE):
            out.append(data[i : i + 2 + length])
        i += 2 + length
    return None


def strip_png_metadata(data: bytes) -> bytes | None:
    """The PNG without text/EXIF/time chunks and without anything after IEND; None if malformed."""
    sig = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(sig):
        return None
    out, i, n = [sig], len(sig), len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > n:
            return None
        if kind not in _PNG_DROP:
            out.append(data[i:end])
        if kind == b"IEND":
            return b"".join(out)
        i = end
    return None


_STRIPPERS = {"JPEG": (strip_jpeg_metadata, ".jpg"), "PNG": (strip_png_metadata, ".png")}


def _original_bytes(raw: Image.Image, data: bytes) -> bytes | None:
    """The user's own file, metadata stripped, when storing it is exactly storing the normalized image:
    a JPEG or PNG, already 8-bit RGB or grey without transparency, upright. Why: re-encoding a photo
    that needs no change cost ~3 ms per image (a third of the 50 ms registration budget for 5 photos)
    and loses quality; keeping the original is faster and lossless."""
    if raw.format not in _STRIPPERS or raw.mode not in ("RGB", "L") or "transparency" in raw.info:
        return None
    if exif_orientation(raw) != 1:
        return None
    return _STRIPPERS[raw.format][0](data)


def stored_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the stored file an :meth:`ImageStore.prepare` image stands for."""
    return tuple(image.info.get("slc_full_size", image.size))  # type: ignore[return-value]


def _extension(data: bytes) -> str:
    return ".png" if data.startswith(b"\x89PNG") else ".jpg"


class ImageStore:
    """Content-addressed store of normalized reference images under ``root``.

    ``put`` validates/normalizes (via :func:`load_image`), encodes (``format``: "jpeg" q95, the default,
    because PNG encoding of photos cost ~25 ms per image and broke the 50 ms registration budget; or
    "png", lossless), names the file by the sha256 of those bytes and writes it atomically. ``max_side``
    downsizes very large photos before storing (reference images only ever feed encoders and VLMs that
    work at <= 1-2k px); ``None`` keeps the size. Lookups find files of either format.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_side: int | None = 2048,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        format: str = "jpeg",  # noqa: A002
    ) -> None:
        if format not in _ENCODERS:
            raise ValueError(f"format must be one of {sorted(_ENCODERS)}")
        self.root = Path(root).expanduser()
        self.max_side = max_side
        self.max_pixels = max_pixels
        self.format = format
        self._encode, self._ext = _ENCODERS[format]

    def _check_sha(self, sha256: str) -> str:
        if not isinstance(sha256, str) or not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return sha256

    def path(self, sha256: str) -> Path:
        """Where the image with this digest lives (the existing file of any format, else where it would go)."""
        sha = self._check_sha(sha256)
        base = self.root / sha[:2]
        for _, ext in _ENCODERS.values():
            if (base / f"{sha}{ext}").is_file():
                return base / f"{sha}{ext}"
        return base / f"{sha}{self._ext}"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def prepare(self, source: ImageSource, *, decode_side: int | None = None) -> tuple[Image.Image, bytes, str]:
        """Validate + normalize without writing: (rgb image, file bytes to store, sha256). Lets callers
        check every image of a registration before anything touches the disk.

        A JPEG/PNG file that needs no change (RGB or grey, opaque, upright, within ``max_side``) is stored
        as the user's own bytes with metadata stripped (:func:`strip_jpeg_metadata`); anything else is
        re-encoded in the store's ``format``. ``decode_side``: the caller only needs pixels at about this
        side (an encoder's input), so a JPEG stored as is may be decoded at a reduced scale; the image
        returned is then smaller than the stored one, whose size is in ``info["slc_full_size"]``. A JPEG
        larger than ``max_side`` is decoded at a reduced DCT scale and stored at that size (longer side in
        (max_side/2, max_side]; :func:`~slc.agent.images.decode_image`); any other image too large is reduced
        before it is widened to RGB, so the memory a photo needs follows what is stored, not the file's size."""
        raw, original, name = decode_image(source, self.max_pixels, draft_side=decode_side, draft_max_side=self.max_side)
        fits = not self.max_side or max(stored_size(raw)) <= self.max_side
        data = _original_bytes(raw, original) if original is not None and fits else None
        full_size = raw.info.get("slc_full_size") if fits else None  # not fits: stored at the decoded size
        if full_size and data is None:
            raw, original, name = decode_image(source, self.max_pixels)  # it must be re-encoded: decode it whole
            full_size = None
        # always a new image, never the caller's; one too large is reduced before it is widened to RGB
        img = normalize_image(raw, name, from_file=original is not None, max_side=None if fits else self.max_side)
        if not fits:
            img.info.pop("slc_full_size", None)  # what is stored is this image (re-encoded), not the file
            img.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS)  # type: ignore[arg-type]
        if data is None:
            data = self._encode(img)
        if full_size:
            img.info["slc_full_size"] = full_size
        return img, data, hashlib.sha256(data).hexdigest()

    def write(self, data: bytes, sha256: str, size: tuple[int, int]) -> ReferenceImage:
        """Write already-prepared bytes atomically (no-op when the digest is already stored)."""
        target = self.path(sha256)
        if not target.is_file():
            target = target.with_suffix(_extension(data))
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
        return ReferenceImage(sha256=sha256, path=str(target), width=size[0], height=size[1])

    def put(self, image: ImageSource) -> ReferenceImage:
        """Validate, normalize and store one image; returns its reference (sha256, path, size)."""
        img, data, sha = self.prepare(image)
        return self.write(data, sha, stored_size(img))

    def open(self, sha256: str) -> Image.Image:
        """The stored image as RGB (raises InvalidImageError if missing or damaged on disk)."""
        return load_image(self.path(sha256), max_pixels=max(self.max_pixels, DEFAULT_MAX_PIXELS))

    def delete(self, sha256: str) -> bool:
        """Remove the file (any format); True if something was removed."""
        removed = False
        base = self.root / self._check_sha(sha256)[:2]
        for _, ext in _ENCODERS.values():
            try:
                (base / f"{sha256}{ext}").unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed

    def touch(self, sha256: str) -> None:
        """Mark the image as used now: a store with a retention period keeps it that long from this use."""
        os.utime(self.path(sha256))

    def delete_older_than(self, cutoff: float) -> int:
        """Delete every image last written or touched before ``cutoff`` (a ``time.time()``); returns how many.
        Why by file time: a store of query photos keeps no records, the file is the whole of a photo."""
        n = 0
        for sha in list(self):
            path = self.path(sha)
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    n += 1
            except FileNotFoundError:  # removed meanwhile by another process
                pass
        return n

    def purge(self) -> int:
        """Erase the whole store: every image, temp files, the folder itself; returns how many images."""
        n = sum(int(self.delete(sha)) for sha in list(self))
        self.clean_temp_files()
        if self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)
        return n

    def __iter__(self) -> Iterator[str]:
        """Digests of all stored images (for garbage collection)."""
        if not self.root.is_dir():
            return
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for f in sub.iterdir():
                    if f.suffix in (".jpg", ".png") and _SHA_RE.match(f.stem):
                        yield f.stem

    def clean_temp_files(self) -> int:
        """Remove temp files a crashed writer left behind; returns how many."""
        n = 0
        if self.root.is_dir():
            for f in self.root.glob("*/.tmp-*"):
                try:
                    f.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
        return n


__all__ = [
    "ImageStore",
    "encode_jpeg",
    "encode_png",
    "stored_size",
    "strip_jpeg_metadata",
    "strip_png_metadata",
]
