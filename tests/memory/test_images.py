"""load_image and ImageStore: every kind of bad input is a typed error naming the file; odd modes normalize."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slc.agent.errors import InvalidImageError
from slc.agent.images import load_image
from slc.memory.images import ImageStore

from .conftest import image_bytes, noise_image, write_image


def test_valid_png_and_jpeg_paths_load_as_rgb(tmp_path):
    p = write_image(tmp_path / "a.png", noise_image(1))
    j = write_image(tmp_path / "b.jpg", noise_image(2), "JPEG")
    for path in (p, j, str(p)):
        img = load_image(path)
        assert img.mode == "RGB" and img.size == (48, 40)
    assert np.array_equal(np.asarray(load_image(p)), np.asarray(noise_image(1)))


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.png", b"", "empty file"),
        ("notes.png", b"this is plainly not an image at all\n" * 10, "not an image"),
        ("doc.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    ],
)
def test_bad_files_raise_typed_error_naming_file(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InvalidImageError) as err:
        load_image(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_truncated_png_and_jpeg(tmp_path):
    big = noise_image(3, (256, 256))
    for fmt in ("PNG", "JPEG"):
        data = image_bytes(big, fmt)
        path = tmp_path / f"cut.{fmt.lower()}"
        path.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(InvalidImageError, match="truncated|corrupt") as err:
            load_image(path)
        assert str(path) in str(err.value)


def test_corrupt_payload(tmp_path):
    data = bytearray(image_bytes(noise_image(4, (128, 128))))
    data[60:400] = b"\x00" * 340  # header intact, compressed data destroyed
    with pytest.raises(InvalidImageError):
        load_image(bytes(data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InvalidImageError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InvalidImageError, match="not a regular file"):
        load_image(tmp_path)
    with pytest.raises(InvalidImageError, match="unsupported source"):
        load_image(12345)  # type: ignore[arg-type]


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # 1-bit 12000x12000 PNG: ~18 KB on disk, 144 M pixels (432 MB as RGB) once decoded.
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(InvalidImageError, match="too large") as err:
        load_image(path)
    assert str(path) in str(err.value)
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(noise_image(5, (100, 100)), max_pixels=5_000)


def test_cmyk_jpeg_is_converted():
    data = image_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=100)
    r, g, b = load_image(data).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # pure magenta+yellow ink = red


def test_16_bit_and_float_greyscale_are_rescaled():
    arr = np.linspace(0, 65535, 64 * 8, dtype=np.uint16).reshape(8, 64)
    img16 = Image.fromarray(arr)
    assert img16.mode.startswith("I;16")
    out = load_image(image_bytes(img16))
    assert out.mode == "RGB"
    px = np.asarray(out)[..., 0]
    assert px.min() == 0 and px.max() == 255  # full 16-bit range -> full 8-bit range
    f = Image.fromarray(np.full((4, 4), 0.5, np.float32))
    assert load_image(f).getpixel((0, 0)) == (128, 128, 128)
    nan = Image.fromarray(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(InvalidImageError, match="NaN"):
        load_image(nan)


def test_transparency_composites_on_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    out = load_image(image_bytes(rgba))
    assert out.getpixel((4, 4)) == (255, 255, 255) and out.getpixel((0, 0)) == (255, 0, 0)
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(la).getpixel((1, 1)) == (255, 255, 255)
    p = Image.new("P", (4, 4), 0)
    p.putpalette([10, 20, 30] + [0] * 765)
    p.info["transparency"] = 0
    assert load_image(image_bytes(p)).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    img = noise_image(6, (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, format="JPEG", exif=exif)
    assert load_image(path).size == (20, 40)


def test_image_store_content_addressed_atomic_dedup(tmp_path):
    store = ImageStore(tmp_path / "imgs")
    ref = store.put(noise_image(7))
    path = store.path(ref.sha256)
    assert path.is_file() and ref.path == str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
    assert (ref.width, ref.height) == (48, 40)
    again = store.put(noise_image(7))  # the same picture again -> the same file
    assert again.sha256 == ref.sha256 and list(store) == [ref.sha256]
    assert not list((tmp_path / "imgs").rglob(".tmp-*"))
    assert store.exists(ref.sha256) and store.delete(ref.sha256) and not store.exists(ref.sha256)
    assert store.delete(ref.sha256) is False
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_image_store_rejects_bad_images_and_writes_nothing(tmp_path):
    store = ImageStore(tmp_path / "imgs")
    with pytest.raises(InvalidImageError):
        store.put(b"garbage")
    assert list(store) == []


def test_image_store_png_is_lossless(tmp_path):
    store = ImageStore(tmp_path / "imgs", format="png")
    ref = store.put(noise_image(9))
    assert ref.path.endswith(".png")
    assert np.array_equal(np.asarray(store.open(ref.sha256)), np.asarray(noise_image(9)))
    jpeg_store = ImageStore(tmp_path / "imgs")  # same folder, other format: finds the PNG too
    assert jpeg_store.exists(ref.sha256) and list(jpeg_store) == [ref.sha256]


def test_image_store_downsizes_huge_photos(tmp_path):
    store = ImageStore(tmp_path / "imgs", max_side=64)
    ref = store.put(noise_image(8, (300, 150)))
    assert (ref.width, ref.height) == (64, 32)


def _gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[0xA431] = "SERIAL-12345"  # body serial number
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS position
    return exif


def test_store_keeps_original_jpeg_bytes_without_metadata(tmp_path):
    """A photo that needs no change is stored as the user's own JPEG stream (no re-encode, no quality
    loss) with EXIF (GPS, serial), comments and XMP removed; the same file via path or bytes is one file."""
    img = noise_image(11, (64, 48))
    src = tmp_path / "me.jpg"
    img.save(src, format="JPEG", quality=80, exif=_gps_exif(), comment=b"at home, Main St 5")
    data = src.read_bytes()
    assert b"SERIAL-12345" in data and b"Main St" in data
    store = ImageStore(tmp_path / "imgs")
    ref = store.put(src)
    stored = Path(ref.path).read_bytes()
    assert ref.path.endswith(".jpg") and hashlib.sha256(stored).hexdigest() == ref.sha256
    assert b"SERIAL-12345" not in stored and b"Main St" not in stored and b"Exif" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()
    # the compressed image data is the user's own: decoding gives exactly the original file's pixels
    assert np.array_equal(np.asarray(store.open(ref.sha256)), np.asarray(Image.open(src).convert("RGB")))
    assert stored.endswith(data[data.index(b"\xff\xda"):])
    assert store.put(data).sha256 == ref.sha256 and list(store) == [ref.sha256]


def test_store_keeps_original_png_bytes_without_text_chunks(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "Main St 5")
    src = tmp_path / "me.png"
    noise_image(12).save(src, format="PNG", pnginfo=info)
    store = ImageStore(tmp_path / "imgs")
    ref = store.put(src)
    stored = Path(ref.path).read_bytes()
    assert ref.path.endswith(".png") and b"Main St" not in stored and b"tEXt" not in stored
    assert np.array_equal(np.asarray(store.open(ref.sha256)), np.asarray(noise_image(12)))


@pytest.mark.parametrize("case", ["rotated", "rgba", "trailing-image", "cmyk"])
def test_store_reencodes_files_that_need_normalizing(tmp_path, case):
    """Files whose stored form must differ from the original (orientation, transparency, colour model) or
    whose layout is not one plain JPEG (a phone's trailing depth/MPO image) are re-encoded, metadata-free."""
    img = noise_image(13, (40, 20))
    src = tmp_path / "x"
    if case == "rotated":
        exif = _gps_exif()
        exif[0x0112] = 6
        img.save(src, format="JPEG", exif=exif)
    elif case == "rgba":
        img.convert("RGBA").save(src, format="PNG")
    elif case == "cmyk":
        img.convert("CMYK").save(src, format="JPEG")
    else:
        src.write_bytes(image_bytes(img, "JPEG") + image_bytes(noise_image(14), "JPEG", exif=_gps_exif()))
    store = ImageStore(tmp_path / "imgs")
    ref = store.put(src)
    stored = Path(ref.path).read_bytes()
    assert stored != src.read_bytes() and b"SERIAL-12345" not in stored
    assert hashlib.sha256(stored).hexdigest() == ref.sha256
    assert (ref.width, ref.height) == ((20, 40) if case == "rotated" else (40, 20))


def test_prepare_decodes_jpeg_at_reduced_scale_but_stores_the_whole_file(tmp_path):
    """With ``decode_side`` (an encoder's input size) a plain JPEG is decoded at a reduced DCT scale for
    the encoder while the stored file, its digest and recorded size are the full original."""
    from slc.memory.images import stored_size

    src = tmp_path / "big.jpg"
    noise_image(15, (400, 320)).save(src, format="JPEG", quality=90)
    store = ImageStore(tmp_path / "imgs")
    small, data, sha = store.prepare(src, decode_side=64)
    full, data_full, sha_full = store.prepare(src)
    assert small.size == (100, 80) and full.size == (400, 320)  # 1/4 scale keeps both sides >= 64
    assert data == data_full and sha == sha_full and stored_size(small) == (400, 320)
    ref = store.write(data, sha, stored_size(small))
    assert (ref.width, ref.height) == (400, 320) and store.open(sha).size == (400, 320)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(src.read_bytes()[:-200])
    with pytest.raises(InvalidImageError, match="truncated|corrupt"):
        store.prepare(truncated, decode_side=64)  # a reduced-scale decode still reads every byte


def test_a_jpeg_larger_than_max_side_is_decoded_at_a_reduced_scale_and_stored_so(tmp_path):
    """(issue 19) Its full-size pixels are never decoded: a 1000x600 JPEG in a store of max_side 512 is
    decoded at 1/2 DCT scale and stored at 500x300 (it used to be decoded whole and resized to 512x307);
    every compressed byte is still read, so a truncated one is still refused."""
    src = tmp_path / "phone.jpg"
    noise_image(21, (1000, 600)).save(src, format="JPEG", quality=90)
    store = ImageStore(tmp_path / "imgs", max_side=512)
    img, data, sha = store.prepare(src, decode_side=64)
    assert img.size == (500, 300) and "slc_full_size" not in img.info
    ref = store.write(data, sha, img.size)
    assert store.open(sha).size == (500, 300) == (ref.width, ref.height)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: re-encoded anyway, so it is decoded small too, then turned upright
    rotated = tmp_path / "rotated.jpg"
    noise_image(22, (1000, 600)).save(rotated, format="JPEG", quality=90, exif=exif)
    assert store.prepare(rotated)[0].size == (300, 500)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src.read_bytes()[:-300])
    with pytest.raises(InvalidImageError, match="truncated|corrupt"):
        store.prepare(cut)


def test_a_huge_16_bit_scan_is_reduced_without_float_copies(tmp_path):
    """(issue 15, case 3) A 16 MP 16-bit greyscale PNG used to become several full float64 copies (128 MB
    each) and a full-size RGB image before the resize; now one float strip at a time, reduced while grey."""
    import tracemalloc

    ramp = (np.add.outer(np.arange(4000), np.arange(4000)) * 8).astype(np.uint16)
    src = tmp_path / "scan.png"
    Image.fromarray(ramp).save(src, compress_level=1)
    store = ImageStore(tmp_path / "imgs", max_side=1000)
    tracemalloc.start()
    try:
        img, _, _ = store.prepare(src)
        _, peak = tracemalloc.get_traced_memory()  # numpy's buffers are traced; one 1 MP strip = 8 MB
    finally:
        tracemalloc.stop()
    assert img.size == (1000, 1000) and img.mode == "RGB"
    assert peak < 24 * 2**20, f"numpy peak {peak / 2**20:.0f} MB"
    got = np.asarray(img)[..., 0].astype(int)
    want = np.rint(ramp[::4, ::4] / 257.0)  # the same /257 scale, reduced 4x
    assert abs(got.mean() - want.mean()) < 1.0 and got.max() <= 255
