"""Concept memory: query latency and recall by image at 1k..100k concepts, and registration cost.

What it measures (issue 3):
- Query by image embedding through ``ConceptMemory.recall_by_embedding`` (through the memory's backend as
  built: the in-process copy of the tenant's index, memory/mirror.py, over Chroma; per-concept
  aggregation, concept-record fetch: the whole recall path minus the encoder) at each size, for
  realistic clustered 512-d vectors (queries = new "photos" near a stored concept) and for uniform random
  vectors (queries = fresh random directions, HNSW's worst case). Median and p95 latency.
- recall@5 against exact brute-force search (numpy, same vectors) and the brute-force latency, same run.
- Name lookup (``recall_by_text``) for a question naming one stored concept and one naming none.
- An ef_search sweep on the same index (collection.modify), since recall vs. speed is that knob.
- Registration cost per concept with the tiny CLIP encoder and MiniLM, 5 photos, model load excluded: from
  JPEG files (the user's path), from in-memory noise images (worst case), and into a populated memory.

Targets at 100k: median < 10 ms, recall@5 >= 0.95; registration < 50 ms per concept (5 images).
Quick run: ``python benchmarks/memory_query.py --sizes 1000 --queries 50``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def make_vectors(kind: str, n: int, dim: int, n_queries: int, rng: np.random.Generator):
    if kind == "clustered":
        n_clusters = max(10, n // 20)
        centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        assign = rng.integers(0, n_clusters, n)
        db = centers[assign] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
        picks = rng.integers(0, n, n_queries)
        queries = db[picks] + 0.6 * rng.standard_normal((n_queries, dim)).astype(np.float32)
    else:
        db = rng.standard_normal((n, dim)).astype(np.float32)
        queries = rng.standard_normal((n_queries, dim)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return db, queries


def fill(mem, db: np.ndarray, batch: int) -> list[str]:
    """Bulk-load one reference image per concept straight into the memory's two indexes."""
    from datetime import datetime, timezone

    from slc.memory.records import concept_record, image_record
    from slc.memory.types import Concept, ReferenceImage

    ids = [f"{i:032x}" for i in range(len(db))]  # stable, so a kept index (--index-dir) maps to the same vectors
    # concept records need a vector; text recall is not measured here, so random unit vectors will do
    text_vecs = np.random.default_rng(1).standard_normal((len(db), 384)).astype(np.float32)
    text_vecs /= np.linalg.norm(text_vecs, axis=1, keepdims=True)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sha = "0" * 64
    ref = ReferenceImage(sha256=sha, path="00/x.jpg", width=1, height=1)
    for s in range(0, len(db), batch):
        chunk = ids[s : s + batch]
        mem._imgs.add([image_record(cid, sha, db[s + i]) for i, cid in enumerate(chunk)])
        mem._concepts.add([
            concept_record(Concept(id=cid, tenant=mem.tenant, name=f"c{s + i}", images=[ref], created_at=now, updated_at=now),
                           text_vecs[s + i])
            for i, cid in enumerate(chunk)
        ])
    return ids


def run_one(kind: str, n: int, ef: int, db: np.ndarray, queries: np.ndarray, args) -> dict:
    """Build one index (ef_search is read when Chroma creates/loads an index; collection.modify did not
    change recall within a process, so every ef value gets its own index), then time queries."""
    from slc.agent.settings import Settings
    from slc.memory.store import ConceptMemory

    keep = args.index_dir is not None
    if keep:  # built once, reused by later runs (a 100k build takes minutes; queries are what is timed)
        s = Settings().chroma
        tmp = args.index_dir / f"{kind}-n{n}-d{args.dim}-seed{args.seed}-M{s.hnsw_m}-efc{s.hnsw_ef_construction}-ef{ef}-sync{s.hnsw_sync_threshold}"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="slc-bench-mem-"))
    mem = None
    try:
        # one big tenant: room for both of its copies (image vectors + concept text vectors, capacity doubling);
        # a cap of 1.5x the image vectors alone (586 MB at 100k) ran 30 min without a result
        settings = Settings(data_dir=tmp, memory_cache_mb=max(256, n * (args.dim + 384) * 4 * 4 / 2**20))
        settings.chroma.hnsw_ef_search = ef
        mem = ConceptMemory(settings, tenant="bench", image_embedder=_NoEncoder(args.dim), text_embedder=_NoEncoder(384))
        t0 = time.perf_counter()
        if keep and mem._imgs.count() == n:
            ids, load_rate = [f"{i:032x}" for i in range(n)], float("nan")
        else:
            if mem._imgs.count():
                raise SystemExit(f"{tmp} holds a partial index: remove it and run again")
            ids = fill(mem, db, args.batch)
            load_rate = n / (time.perf_counter() - t0)
        bf_lat, exact = [], []  # exact top-k by brute force, timed
        for q in queries:
            t = time.perf_counter()
            sims = db @ q
            top = np.argpartition(-sims, args.k)[: args.k]
            top = top[np.argsort(-sims[top])]
            bf_lat.append((time.perf_counter() - t) * 1e3)
            exact.append({ids[i] for i in top})
        for q in queries[: min(5, len(queries))]:  # warm-up (index load, caches)
            mem.recall_by_embedding(q, top_k=args.k, threshold=-1.0)
        lat, rec = [], []
        for q, ex in zip(queries, exact):
            t = time.perf_counter()
            hits = mem.recall_by_embedding(q, top_k=args.k, threshold=-1.0)
            lat.append((time.perf_counter() - t) * 1e3)
            rec.append(len({h.concept.id for h in hits} & ex) / args.k)
        # name lookup (recall_by_text): a question naming one stored concept, and one naming none
        rng = np.random.default_rng(args.seed + 1)
        named = [f"Is <c{int(i)}> in the garden today?" for i in rng.integers(0, n, len(queries))]
        for q in named[:5]:
            mem.recall_by_text(q)
        name_lat, name_none = [], []
        for q in named:
            t = time.perf_counter()
            hits = mem.recall_by_text(q)
            name_lat.append((time.perf_counter() - t) * 1e3)
            assert len(hits) == 1, (q, hits)
            t = time.perf_counter()
            assert mem.recall_by_text("What is the weather like in the garden today?") == []
            name_none.append((time.perf_counter() - t) * 1e3)
        return dict(kind=kind, n=n, ef=ef, med=statistics.median(lat), p95=pct(lat, 95), recall=float(np.mean(rec)),
                    bf_med=statistics.median(bf_lat), bf_p95=pct(bf_lat, 95), load_rate=load_rate,
                    name_med=statistics.median(name_lat), name_none_med=statistics.median(name_none))
    finally:
        if mem is not None:
            mem.close()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_queries(args) -> list[dict]:
    rows = []
    for kind in args.kinds:
        for n in args.sizes:
            db, queries = make_vectors(kind, n, args.dim, args.queries, np.random.default_rng(args.seed))
            for ef in args.ef_search:
                r = run_one(kind, n, ef, db, queries, args)
                rows.append(r)
                load = "index reused" if np.isnan(r["load_rate"]) else f"load {r['load_rate']:,.0f}/s"
                print(f"  {kind:9s} n={n:>7,} ef={ef:<4d} median {r['med']:6.2f} ms  p95 {r['p95']:6.2f} ms  "
                      f"recall@{args.k} {r['recall']:.3f}  | brute force median {r['bf_med']:6.2f} ms  ({load})  | "
                      f"name lookup median {r['name_med']:.3f} ms (naming none {r['name_none_med']:.3f} ms)", flush=True)
    return rows


class _NoEncoder:
    """Placeholder: the query benchmark feeds vectors directly, so no encoder may ever be called."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def embed_images(self, images):  # pragma: no cover - would be a benchmark bug
        raise AssertionError("the query benchmark must not encode images")

    embed_texts = embed_images


def photo_like(rng: np.random.Generator, size: tuple[int, int] = (512, 384)) -> "Image.Image":
    """A stand-in for a phone photo: smooth colour regions (upsampled coarse noise) plus mild sensor noise.
    Pure noise would be a pathological JPEG (incompressible, ~5x the bytes of a real photo)."""
    from PIL import Image

    coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = smooth + rng.normal(0, 4, smooth.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def bench_registration(args) -> list[dict]:
    """Register concepts of 5 photos 512x384 each, model load excluded, two ways: from JPEG files on disk
    (what ``slc concept add bo photos/*.jpg`` does; files carry EXIF like a phone's) and from in-memory
    PIL images of pure noise (the worst case: every image is re-encoded, and noise encodes slowest)."""
    from PIL import Image

    from slc.agent.settings import Settings
    from slc.memory.embedders import HFImageEmbedder, SentenceTransformerTextEmbedder
    from slc.memory.store import ConceptMemory
    from slc.testing import build_tiny_clip

    tmp = Path(tempfile.mkdtemp(prefix="slc-bench-reg-"))
    try:
        clip = build_tiny_clip(tmp / "clip")
        img_emb, txt_emb = HFImageEmbedder(clip), SentenceTransformerTextEmbedder()  # model load: not timed
        n = args.reg + 3  # the first 3 adds warm up torch and Chroma
        rng = np.random.default_rng(0)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "PhoneMaker", "Phone 12"
        files = []
        for i in range(5 * n):
            path = tmp / "photos" / f"IMG_{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            photo_like(rng).save(path, format="JPEG", quality=90, exif=exif)
            files.append(path)
        noise = [Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)) for _ in range(5 * n)]
        rows = []
        cases = [("JPEG files on disk", files, 0), ("in-memory noise images (worst case)", noise, 0)]
        cases += [(f"JPEG files on disk, memory already holding {args.reg_prefill:,} concepts", files, args.reg_prefill)] if args.reg_prefill else []
        for label, photos, prefill in cases:
            mem = ConceptMemory(Settings(data_dir=tmp / f"data-{len(rows)}"), tenant="bench",
                                image_embedder=img_emb, text_embedder=txt_emb)
            if prefill:  # Chroma's add cost grows with the collection: measure it on a populated memory too
                vecs = np.random.default_rng(2).standard_normal((prefill, img_emb.dim)).astype(np.float32)
                fill(mem, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), args.batch)
            lat = []
            for i in range(n):
                t = time.perf_counter()
                mem.add(f"concept{i}", photos[5 * i : 5 * i + 5], description=f"my object number {i}", category="thing")
                if i >= 3:
                    lat.append((time.perf_counter() - t) * 1e3)
            mem.close()
            rows.append(dict(label=label, med=statistics.median(lat), p95=pct(lat, 95), n=len(lat)))
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated concept counts")
    ap.add_argument("--kinds", default="clustered,random")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--ef-search", default="", help="comma-separated ef_search values (default: settings value)")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--index-dir", type=Path, default=None,
                    help="keep built indexes here and reuse them in later runs (default: build in a temp dir)")
    ap.add_argument("--reg", type=int, default=20, help="concepts registered for the registration timing (0 = skip)")
    ap.add_argument("--reg-prefill", type=int, default=10000,
                    help="also time registration into a memory already holding this many concepts (0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.kinds = [k for k in args.kinds.split(",") if k]
    from slc.agent.settings import Settings

    default_ef = Settings().chroma.hnsw_ef_search
    args.ef_search = [int(e) for e in args.ef_search.split(",") if e] or [default_ef]
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("SLC_BENCH_THREADS", "1")))  # 2 threads on a shared 2-core box: 15x slower
    except ImportError:
        pass
    s = Settings().chroma
    print(f"memory query benchmark: dim={args.dim}, {args.queries} queries, top-{args.k}, HNSW M={s.hnsw_m} "
          f"ef_construction={s.hnsw_ef_construction} sync_threshold={s.hnsw_sync_threshold}, cpus={os.cpu_count()}, python {sys.version.split()[0]}")
    rows = bench_queries(args)
    print()
    print(f"| vectors | concepts | ef_search | median ms | p95 ms | recall@{args.k} | brute-force median ms | brute-force p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['n']:,} | {r['ef']} | {r['med']:.2f} | {r['p95']:.2f} | {r['recall']:.3f} | "
              f"{r['bf_med']:.2f} | {r['bf_p95']:.2f} |")
    if args.reg:
        print()
        for reg in bench_registration(args):
            print(f"registration from {reg['label']} (tiny CLIP + MiniLM, 5 photos 512x384 per concept, "
                  f"{reg['n']} concepts, model load excluded): median {reg['med']:.1f} ms, p95 {reg['p95']:.1f} ms "
                  f"per concept (target < 50 ms)")


if __name__ == "__main__":
    main()
