"""Image decoding: registration of phone photos vs fully decoding them, and peak memory of huge images.

Goals (issue 19, issue 15 case 3), measured in ONE run on this machine:
- registering one concept of five 12 MP phone JPEGs (4000x3000, with EXIF; ``ConceptMemory.add`` with the
  tiny CLIP + MiniLM, model load excluded) takes <= 0.5x the time to fully decode the same five files
  (``Image.open(...).load()``); every compressed byte is still decoded (reduced DCT scale, ``Image.draft``);
- peak RSS of ``ImageStore.prepare`` follows what is stored, not the file: a 64 MP 16-bit greyscale PNG
  (was 2.1-2.7 GB, float64 copies) and an 8000x6000 JPEG (was 323 MB), each in a fresh process, reported
  as the growth of peak RSS (VmHWM, reset after the imports) over the RSS before the call.

    python benchmarks/image_decode.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

_CHILD = r"""
import sys
from slc.memory.images import ImageStore

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])  # kB

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: the imports' own peak does not count
base = status("VmRSS")
img, data, sha = ImageStore(sys.argv[2]).prepare(sys.argv[1], decode_side=224)
print(f"{(status('VmHWM') - base) / 1024:.1f} {img.size[0]}x{img.size[1]}")
"""


def photo_like(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A stand-in for a phone photo: smooth colour regions plus mild sensor noise (see memory_query.py)."""
    coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 64, size[0] // 64, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    smooth += rng.normal(0, 4, smooth.shape).astype(np.float32)
    return Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8))


def peak_rss_mb(path: Path, tmp: Path) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp / "store")], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="repeats of each timing (the median is reported)")
    args = ap.parse_args()

    from slc.agent.settings import Settings
    from slc.memory.embedders import HFImageEmbedder, SentenceTransformerTextEmbedder
    from slc.memory.store import ConceptMemory
    from slc.testing import build_tiny_clip

    tmp = Path(tempfile.mkdtemp(prefix="slc-bench-decode-"))
    try:
        rng = np.random.default_rng(0)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "PhoneMaker", "Phone 12"
        phones = []
        for i in range(5):
            p = tmp / f"IMG_{i:04d}.jpg"
            photo_like(rng, (4000, 3000)).save(p, format="JPEG", quality=90, exif=exif)
            phones.append(p)
        mb = sum(p.stat().st_size for p in phones) / 2**20

        def full_decode() -> None:
            for p in phones:
                with Image.open(p) as im:
                    im.load()

        clip = build_tiny_clip(tmp / "clip")
        img_emb, txt_emb = HFImageEmbedder(clip), SentenceTransformerTextEmbedder()  # model load: not timed
        mem = ConceptMemory(Settings(data_dir=tmp / "data"), tenant="bench", image_embedder=img_emb,
                            text_embedder=txt_emb)
        mem.add("warmup", phones[:1])  # torch, Chroma and the encoders warm
        full_decode()
        dec, reg = [], []
        for r in range(args.repeats):  # interleaved, so load on the machine hits both alike
            t = time.perf_counter()
            full_decode()
            dec.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            mem.add(f"phone{r}", phones, description="my phone photos", category="thing")
            reg.append((time.perf_counter() - t) * 1e3)
        stored = mem.get("phone0").images[0]
        mem.close()
        d, g = statistics.median(dec), statistics.median(reg)

        scan = tmp / "scan16.png"  # 64 MP, 16-bit greyscale, tiny on disk (a smooth ramp)
        ramp = (np.add.outer(np.arange(8000, dtype=np.uint32), np.arange(8000, dtype=np.uint32)) * 4).astype(np.uint16)
        Image.fromarray(ramp).save(scan)
        del ramp
        big = tmp / "big.jpg"
        photo_like(rng, (8000, 6000)).save(big, format="JPEG", quality=90)
        rss_png, size_png = peak_rss_mb(scan, tmp)
        rss_jpg, size_jpg = peak_rss_mb(big, tmp)

        rows = {
            "full_decode_5x12MP_ms": round(d, 1),
            "registration_5x12MP_ms": round(g, 1),
            "ratio": round(g / d, 3),
            "stored_size": f"{stored.width}x{stored.height}",
            "peak_rss_png16_64MP_MB": rss_png,
            "peak_rss_jpeg_8000x6000_MB": rss_jpg,
        }
        print(f"five 12 MP phone JPEGs ({mb:.1f} MB), median of {args.repeats}: full decode {d:.1f} ms, "
              f"registration (ConceptMemory.add, tiny CLIP + MiniLM) {g:.1f} ms = {g / d:.2f}x "
              f"(goal <= 0.5x); stored at {stored.width}x{stored.height}")
        print(f"peak RSS growth of ImageStore.prepare: 64 MP 16-bit PNG ({scan.stat().st_size / 1024:.0f} KB) "
              f"{rss_png:.0f} MB -> {size_png}; 8000x6000 JPEG ({big.stat().st_size / 2**20:.1f} MB) "
              f"{rss_jpg:.0f} MB -> {size_jpg}")
        print(json.dumps(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
