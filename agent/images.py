"""Loading user images safely: the one gate every image passes before a model or a store sees it.

Why here, in the bottom layer: a reference image at registration, a query photo for the small VLM, a CaT
sample and a photo sent by a LangGraph client may each be anything: a truncated download, an empty file, a
PDF renamed ``.jpg``, a 40k x 40k "decompression bomb", a CMYK print JPEG, a 16-bit scientific PNG, a
transparent logo. :func:`load_image` returns a plain 8-bit RGB ``PIL.Image.Image`` or raises
:class:`~slc.agent.errors.InvalidImageError` naming the file and the reason, so callers never see a PIL
stack trace and never store garbage. The model runtimes (agent) and the memory's image store (memory) both
read images through it.

Mode policy (decided here, once): modes that have one sensible RGB reading are normalized, not rejected:
CMYK/YCbCr/LAB/HSV are converted, 16/32-bit integer and float greyscale are rescaled to 8 bits,
transparent images (RGBA, LA, PA, P with a transparency entry) are composited on white (a black
background would turn dark logos invisible). EXIF orientation is applied, so a phone photo is upright.
What cannot be read as a picture (non-finite floats, zero-sized images) is an error.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from slc.agent.errors import InvalidImageError

#: Default ceiling on width*height. 64 MP covers any phone or DSLR photo (a 48 MP phone sensor is
#: 8000x6000) while refusing bombs that would allocate gigabytes once decoded.
DEFAULT_MAX_PIXELS = 64_000_000

ImageSource = Union[str, Path, bytes, bytearray, Image.Image]


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def _bad(name: str, reason: str) -> InvalidImageError:
    return InvalidImageError(f"Invalid image {name}: {reason}")


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, validate and normalize an image to 8-bit RGB.

    ``source`` is a path, the raw file bytes, or an already opened PIL image. Raises
    :class:`InvalidImageError` (message names the file and the reason) for missing, empty, corrupt,
    truncated, non-image, oversized (more than ``max_pixels`` pixels) or unreadable images.
    """
    img, data, name = decode_image(source, max_pixels)
    return normalize_image(img, name, from_file=data is not None)


def decode_image(
    source: ImageSource, max_pixels: int, *, draft_side: int | None = None, draft_max_side: int | None = None
) -> tuple[Image.Image, bytes | None, str]:
    """Open and fully decode (so corruption shows now), before any mode or orientation change.

    ``draft_side``: a plain upright RGB/grey JPEG may be decoded at a reduced DCT scale that keeps both
    sides >= this (every compressed byte is still decoded, so truncation is still caught; a 12 MP phone
    photo decodes ~8x faster at 1/8 scale), if its longer side is at most ``draft_max_side``. The returned
    image then keeps the file's full size in ``info["slc_full_size"]``. An RGB/grey JPEG LONGER than
    ``draft_max_side`` is decoded at the DCT scale whose longer side is the largest within ``draft_max_side``
    (a 4000x3000 photo at 1/2: 2000x1500; 8000x6000 at 1/4), so its full-size pixels never exist in memory. Returns the decoded image, the file bytes it came from (None for a PIL
    image) and its display name."""
    name = _describe(source)
    if isinstance(source, Image.Image):
        img = source
        _check_size(img, name, max_pixels)
        try:
            img.load()
        except Exception as exc:  # noqa: BLE001 - an image object whose data cannot be read
            raise _bad(name, f"pixel data cannot be read ({exc})") from exc
        return img, None, name

    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise _bad(name, "file not found")
        if not path.is_file():
            raise _bad(name, "not a regular file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _bad(name, f"cannot read file ({exc.strerror or exc})") from exc
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise _bad(name, f"unsupported source type {type(source).__name__} (expected path, bytes or PIL image)")

    if not data:
        raise _bad(name, "empty file (0 bytes)")

    with warnings.catch_warnings():
        # PIL only *warns* between MAX_IMAGE_PIXELS and 2x that; we want an error every time.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise _bad(name, "not an image file (format not recognized)") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bad(name, f"image too large (decompression bomb guard): {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on malformed headers
            raise _bad(name, f"corrupt image header ({type(exc).__name__}: {exc})") from exc
        _check_size(img, name, max_pixels)
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            # Someone flipped PIL's global switch; a truncated file would silently load grey pixels.
            raise _bad(name, "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; refusing to load possibly truncated data")
        full_size = img.size
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            if draft_max_side and max(full_size) > draft_max_side:
                # it will be stored re-encoded at <= draft_max_side anyway: decode at the DCT scale (1/2, 1/4,
                # 1/8) whose longer side is the largest one within it, never the whole 12-48 MP
                scale = next((s for s in (1, 2, 4, 8) if -(-max(full_size) // s) <= draft_max_side), 8)
                if scale > 1:
                    img.draft(img.mode, (full_size[0] // scale, full_size[1] // scale))
            elif draft_side and exif_orientation(img) == 1:
                img.draft(img.mode, (draft_side, draft_side))
        try:
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bad(name, f"image too large (decompression bomb guard): {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt data: OSError, SyntaxError, ValueError...
            reason = "truncated file" if "truncated" in str(exc).lower() else "corrupt image data"
            raise _bad(name, f"{reason} ({type(exc).__name__}: {exc})") from exc
    if img.size != full_size:
        img.info["slc_full_size"] = full_size
    return img, data, name


def exif_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block reads as "upright", as in _normalize
        return 1


def normalize_image(img: Image.Image, name: str, *, from_file: bool, max_side: int | None = None) -> Image.Image:
    """Upright 8-bit RGB. ``max_side``: the caller keeps at most this longest side, so a larger image is
    reduced BEFORE it is widened to RGB (a 64 MP 16-bit greyscale scan never exists as 64 MP of RGB, nor as
    floats: peak memory stays near the decoded file plus one 8-bit plane)."""
    if from_file and exif_orientation(img) != 1:  # exif_transpose copies even an upright photo: skip it then
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not reject an otherwise fine photo
            pass
    if max_side and max(img.size) > max_side:
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            img, from_file = _high_depth_to_l(img, name), True
        if img.mode in ("L", "RGB", "CMYK") and "transparency" not in img.info:
            if not from_file:
                img = img.copy()  # never shrink the caller's own image in place
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _to_rgb(img, name, owned=from_file)


def _check_size(img: Image.Image, name: str, max_pixels: int) -> None:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise _bad(name, f"zero-sized image ({w}x{h})")
    if w * h > max_pixels:
        raise _bad(
            name,
            f"image too large: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
            "(decompression bomb guard; pass max_pixels to allow more)",
        )


def _to_rgb(img: Image.Image, name: str, *, owned: bool = False) -> Image.Image:
    """``owned``: the image was decoded here, so it may be returned as is (a caller's image is copied)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img if owned else img.copy()
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
        if mode == "RGB":  # an opaque palette image is done (it used to fall through to "unsupported")
            return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_rgb(img, name)
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        try:
            return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001
            raise _bad(name, f"cannot convert mode {mode} to RGB ({exc})") from exc
    raise _bad(name, f"unsupported image mode {mode!r}")


#: Pixels per strip when a high-depth image is rescaled to 8 bits (bounded working memory, ~8 MB of floats).
_STRIP_PIXELS = 1_000_000


def _high_depth_to_rgb(img: Image.Image, name: str) -> Image.Image:
    return _high_depth_to_l(img, name).convert("RGB")


def _high_depth_to_l(img: Image.Image, name: str) -> Image.Image:
    """16/32-bit integer or float greyscale -> 8-bit grey, keeping the file's own scale where it has one.

    Strip by strip: only one strip at a time is ever a float array (a 64 MP 16-bit image used to make
    several full float64 copies, 2+ GB); the output is one 8-bit plane."""
    w, h = img.size
    rows = max(1, _STRIP_PIXELS // max(w, 1))

    def strips() -> Iterator[tuple[int, np.ndarray]]:
        for y in range(0, h, rows):
            arr = np.asarray(img.crop((0, y, w, min(h, y + rows))))
            if arr.ndim != 2:
                raise _bad(name, f"unsupported {img.mode} image with shape {arr.shape}")
            yield y, arr

    sixteen = img.mode.startswith("I;16")
    lo, hi = 0.0, 65535.0
    if not sixteen:
        lo, hi = float("inf"), float("-inf")
        for _, arr in strips():
            if img.mode == "F" and not np.all(np.isfinite(arr)):
                raise _bad(name, f"mode {img.mode} image contains NaN or infinite values")
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))

    def scale(arr: np.ndarray) -> np.ndarray:
        a = arr.astype(np.float64)  # one strip only, scaled in place
        if sixteen or (img.mode == "I" and lo >= 0 and hi <= 65535 and hi > 255):
            a /= 257.0  # 16-bit full scale -> 8-bit full scale
        elif img.mode == "I" and lo >= 0 and hi <= 255:
            pass
        elif img.mode == "F" and lo >= 0 and hi <= 1:
            a *= 255.0
        elif hi > lo:
            a -= lo  # no natural scale: stretch to the full range
            a *= 255.0 / (hi - lo)
        else:
            a[...] = 0.0
        return a

    out = Image.new("L", (w, h))
    for y, arr in strips():
        a = scale(arr)
        np.clip(np.rint(a, out=a), 0, 255, out=a)
        out.paste(Image.fromarray(a.astype(np.uint8), mode="L"), (0, y))
    return out


def image_list(images: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """One photo or several, as a list (a path, bytes or a PIL image is one photo, not a sequence of them)."""
    if isinstance(images, (str, Path, bytes, bytearray)) or hasattr(images, "getpixel"):
        return [images]  # type: ignore[list-item]
    return list(images)  # type: ignore[arg-type]


__all__ = ["DEFAULT_MAX_PIXELS", "ImageSource", "decode_image", "image_list", "exif_orientation", "load_image", "normalize_image"]
