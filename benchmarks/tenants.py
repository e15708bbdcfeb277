"""One server process, many tenants: what a tenant costs (RSS), and what a query costs among 10,000 tenants.

What it measures, in one run (each phase in a fresh Python process, so RSS is the phase's own):

1. ``single``: a process serving ONE tenant of the store (10 concepts): RSS after its first queries and the
   p50/p95 of a query (``recall_by_embedding`` + ``recall_by_text`` through ``ServiceFactory.memory``, the
   way a graph node reaches memory; no encoder: vectors are given). This is the baseline.
2. ``many``: a process serving EVERY tenant: the same first-tenant warm-up (RSS "first tenant"), then each
   tenant queried once in random order (its copies load: cold-query p50), then random tenants (steady
   state p50/p95). RSS growth over the first tenant, the bytes the copies hold and how many are cached.
3. The alternatives, raw Chroma in fresh processes: (a) one collection per tenant (this project's earlier
   layout), all cached; (b) the same with Chroma's cache of open indexes bounded (it is sized from the
   open-file limit: RLIMIT_NOFILE // 5; the phase lowers the limit); (c) Chroma's own tenant/database
   model (one Chroma database per tenant); (d) the shared collections queried by Chroma with a tenant
   filter (what memory would do without its copies).

The store is built once per run (``build`` phase): ``--tenants`` x ``--concepts`` concept records (name,
description, identity, one reference image, 384-d text vector) and their image records (``--dim``-d).
Chroma's HNSW is built with M=8, ef_construction=32 here so that 200k records load in minutes: slc never
queries it (the copies answer), so only build time and alternative (d) depend on that. With ``--chroma
server`` the store runs in a ``chroma run`` process and the RSS reported is slc's process only (the
server's is printed beside it); ``--chroma embedded`` keeps Chroma's own index in slc's process.

Run: ``python benchmarks/tenants.py [--tenants 10000] [--concepts 10] [--chroma server]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def settings_for(args: argparse.Namespace) -> Any:
    from slc.agent.settings import Settings

    s = Settings(data_dir=Path(args.data), tenant="t0")
    s.chroma.url = args.url or None
    s.chroma.hnsw_m, s.chroma.hnsw_ef_construction = 8, 32  # build speed only (see the module docstring)
    if args.cache_mb:
        s.memory_cache_mb = args.cache_mb
    return s


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tenant_records(t: int, k: int, dim: int) -> tuple[list, list]:
    """The concept and image records of tenant ``t`` (deterministic, so every phase can rebuild queries)."""
    from slc.memory.records import concept_record, image_record
    from slc.memory.types import Concept, Identity, ReferenceImage

    rng = np.random.default_rng(t)
    img, txt = unit(rng, k, dim), unit(rng, k, 384)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    concepts, images = [], []
    for i in range(k):
        cid = f"{t:016x}{i:016x}"
        sha = f"{t:032x}{i:032x}"
        ref = ReferenceImage(sha256=sha, path=f"/x/{sha[:2]}/{sha}.jpg", width=512, height=384)
        c = Concept(id=cid, tenant=f"t{t}", name=f"c{i}", description=f"my object number {i}, a thing of tenant {t}",
                    identity=Identity(category="dog", attributes={"fur": "golden", "collar": "red"}), images=[ref],
                    created_at=now, updated_at=now)
        concepts.append(concept_record(c, txt[i]))
        images.append(image_record(cid, sha, img[i]))
    return concepts, images


def tenant_name(t: int) -> str:
    return f"t{t}"


# -- phases (each runs in its own process) -----------------------------------------------------------------


def phase_build(args: argparse.Namespace) -> dict[str, Any]:
    from slc.memory.backends import open_backend
    from slc.memory.names import tenant_key

    backend = open_backend(settings_for(args)).durable  # straight into Chroma: the copies are not being tested
    t0 = time.perf_counter()
    for t in range(args.tenants):
        key = tenant_key(tenant_name(t))
        concepts, images = tenant_records(t, args.concepts, args.dim)
        backend.open_index(key, "images").add(images)
        backend.open_index(key, "concepts").add(concepts)
    backend.close()
    return {"seconds": time.perf_counter() - t0}


def _query(services: Any, t: int, rng: random.Random, args: argparse.Namespace) -> float:
    """One query of tenant ``t``: a photo's embedding near one of its concepts, and a question naming one."""
    i = rng.randrange(args.concepts)
    vec = unit(np.random.default_rng(t), args.concepts, args.dim)[i]
    t0 = time.perf_counter()
    mem = services.memory(tenant_name(t))
    hits = mem.recall_by_embedding(vec, threshold=0.5)
    named = mem.recall_by_text(f"is <c{i}> in this photo?")
    dt = time.perf_counter() - t0
    assert hits and hits[0].concept.name == f"c{i}" and hits[0].concept.tenant == tenant_name(t), (t, i, hits)
    assert [h.concept.name for h in named] == [f"c{i}"] and named[0].concept.tenant == tenant_name(t)
    return dt


def phase_serve(args: argparse.Namespace) -> dict[str, Any]:
    from slc.graphs.services import ServiceFactory

    services = ServiceFactory(settings_for(args))
    rng = random.Random(1)
    for _ in range(50):  # first tenant, warm
        _query(services, 0, rng, args)
    out: dict[str, Any] = {"rss_first": rss_mb()}
    if args.phase == "single":
        lat = [_query(services, 0, rng, args) for _ in range(args.queries)]
        out.update(p50=statistics.median(lat), p95=pct(lat, 95), rss_end=rss_mb())
        return out
    order = list(range(args.tenants))
    rng.shuffle(order)
    cold = [_query(services, t, rng, args) for t in order]
    out["rss_all_loaded"] = rss_mb()
    lat = [_query(services, rng.randrange(args.tenants), rng, args) for _ in range(args.queries)]
    backend = services._backend
    out.update(cold_p50=statistics.median(cold), cold_p95=pct(cold, 95), p50=statistics.median(lat), p95=pct(lat, 95),
               rss_end=rss_mb(), cached_mb=backend.cached_bytes / 2**20, copies=len(backend._copies),
               cache_mb=backend.cache_bytes / 2**20)
    return out


def phase_per_tenant_collections(args: argparse.Namespace) -> dict[str, Any]:
    """The earlier layout, raw Chroma: two collections per tenant (here the images one is measured)."""
    import chromadb
    from chromadb.config import Settings as CS

    if args.nofile:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    cs = CS(anonymized_telemetry=False, is_persistent=True, persist_directory=str(Path(args.data) / args.phase))
    client = chromadb.PersistentClient(path=cs.persist_directory, settings=cs)
    admin = chromadb.AdminClient(cs)
    conf = {"hnsw": {"space": "cosine", "max_neighbors": 8, "ef_construction": 32, "sync_threshold": 100}}
    n = args.alt_tenants
    database = args.phase == "chroma-databases"
    rss0 = rss_mb()
    cols = []
    for t in range(n):
        if database:  # Chroma's tenant/database model: one database per slc tenant, its collections inside
            admin.create_database(f"db{t}")
            client.set_database(f"db{t}")
        col = client.get_or_create_collection(f"slc-t{t}-images", embedding_function=None, configuration=conf)
        _, images = tenant_records(t, args.concepts, args.dim)
        col.add(ids=[r.id for r in images], embeddings=[r.vector for r in images],
                metadatas=[r.metadata for r in images])
        cols.append(col)
    rss_loaded = rss_mb()
    rng = np.random.default_rng(2)
    one = [cols[0].query(query_embeddings=[unit(rng, 1, args.dim)[0]], n_results=5) for _ in range(5)]  # warm
    lat_one, lat_any, failed = [], [], []
    for _ in range(args.queries // 4):
        q = unit(rng, 1, args.dim)[0]
        t0 = time.perf_counter()
        cols[0].query(query_embeddings=[q], n_results=5)
        lat_one.append(time.perf_counter() - t0)
        col = cols[int(rng.integers(n))]
        t0 = time.perf_counter()
        try:
            col.query(query_embeddings=[q], n_results=5)
            lat_any.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - reported: an evicted, never-flushed index cannot be reloaded
            failed.append(f"{type(exc).__name__}: {exc}")
    del one
    return {"tenants": n, "mb_per_tenant": (rss_loaded - rss0) / n, "rss_end": rss_mb(),
            "p50_one": statistics.median(lat_one), "p50_any": statistics.median(lat_any) if lat_any else float("nan"),
            "p95_any": pct(lat_any, 95) if lat_any else float("nan"), "failed": len(failed),
            "attempts": len(failed) + len(lat_any), "error": failed[0] if failed else ""}


def phase_shared_filter(args: argparse.Namespace) -> dict[str, Any]:
    """Shared collections, Chroma answering with its own tenant filter (no in-process copies)."""
    from slc.memory.backends import open_backend
    from slc.memory.names import tenant_key

    backend = open_backend(settings_for(args)).durable
    rng = np.random.default_rng(3)
    lat = []
    for j in range(args.queries // 10 + 5):
        t = int(rng.integers(args.tenants))
        index = backend.open_index(tenant_key(tenant_name(t)), "images")
        t0 = time.perf_counter()
        index.query(unit(rng, 1, args.dim)[0], 5)
        if j >= 5:
            lat.append(time.perf_counter() - t0)
    return {"p50": statistics.median(lat), "p95": pct(lat, 95), "rss_end": rss_mb()}


PHASES = {"build": phase_build, "single": phase_serve, "many": phase_serve,
          "per-tenant-collections": phase_per_tenant_collections, "per-tenant-collections-bounded": phase_per_tenant_collections,
          "chroma-databases": phase_per_tenant_collections, "shared-filter": phase_shared_filter}


# -- the driver -------------------------------------------------------------------------------------------


def run_phase(name: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", name, "--data", args.data, "--tenants", str(args.tenants),
           "--concepts", str(args.concepts), "--dim", str(args.dim), "--queries", str(args.queries),
           "--alt-tenants", str(args.alt_tenants), "--cache-mb", str(args.cache_mb or 0)]
    if args.url:
        cmd += ["--url", args.url]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def chroma(args: argparse.Namespace) -> Iterator[int | None]:
    if args.chroma != "server":
        yield None
        return
    from slc.agent.processes import free_port, start_chroma, stop_process

    port = free_port()
    proc = start_chroma(Path(args.data) / "server-db", port)
    args.url = f"http://127.0.0.1:{port}"
    try:
        yield proc.pid
    finally:
        stop_process(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--concepts", type=int, default=10)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--alt-tenants", type=int, default=500, help="tenants in the raw-Chroma alternatives (a)-(c)")
    ap.add_argument("--cache-mb", type=float, default=0, help="settings.memory_cache_mb (0 = the default)")
    ap.add_argument("--chroma", choices=("embedded", "server"), default="server")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--nofile", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="slc-bench-tenants-") as td:
        args.data, args.url = td, None
        with chroma(args) as server_pid:
            server = (lambda: f", chroma server RSS {rss_mb(server_pid):.0f} MB") if server_pid else (lambda: "")
            build = run_phase("build", args)
            print(f"store: {args.tenants:,} tenants x {args.concepts} concepts ({args.tenants * args.concepts:,} concepts, "
                  f"{args.dim}-d image + 384-d text vectors), Chroma {args.chroma}, built in {build['seconds']:.0f} s{server()}")
            single = run_phase("single", args)
            many = run_phase("many", args)
            shared = run_phase("shared-filter", args)
        alt_cached = run_phase("per-tenant-collections", args)
        alt_bounded = run_phase("per-tenant-collections-bounded", args, nofile=1000)
        alt_db = run_phase("chroma-databases", args)
    ms = lambda s: 1000 * s  # noqa: E731
    print(f"\nslc (shared collections + in-process copies), query = recall_by_embedding + recall_by_text, {args.queries} queries")
    print(f"  baseline, a process serving one tenant: p50 {ms(single['p50']):.3f} ms  p95 {ms(single['p95']):.3f} ms  "
          f"RSS {single['rss_first']:.0f} MB")
    print(f"  one process serving all {args.tenants:,} tenants: p50 {ms(many['p50']):.3f} ms  p95 {ms(many['p95']):.3f} ms  "
          f"(ratio p50 {many['p50'] / single['p50']:.2f}x the baseline); first query of each tenant (its copies load): "
          f"p50 {ms(many['cold_p50']):.2f} ms  p95 {ms(many['cold_p95']):.2f} ms")
    print(f"  RSS: first tenant {many['rss_first']:.0f} MB -> all tenants queried {many['rss_all_loaded']:.0f} MB -> "
          f"end {many['rss_end']:.0f} MB: growth {many['rss_end'] - many['rss_first']:+.0f} MB "
          f"({1024 * (many['rss_end'] - many['rss_first']) / args.tenants:.1f} KB per tenant); copies cached "
          f"{many['copies']:,} ({many['cached_mb']:.0f} MB counted, cap {many['cache_mb']:.0f} MB)")
    print(f"\nalternatives (raw Chroma, same records, {args.alt_tenants} tenants unless said):")
    for label, r in (("(a) one collection per tenant, Chroma's index cache unbounded", alt_cached),
                     ("(b) one collection per tenant, Chroma's index cache bounded (RLIMIT_NOFILE 1000 -> 200 indexes)", alt_bounded),
                     ("(c) Chroma tenant/database model, one database per tenant", alt_db)):
        print(f"  {label}: {r['mb_per_tenant']:.2f} MB RSS per tenant; query p50 on one warm tenant {ms(r['p50_one']):.2f} ms, "
              f"on a random tenant {ms(r['p50_any']):.2f} ms (p95 {ms(r['p95_any']):.2f} ms)"
              + (f"; {r['failed']} of {r['attempts']} random-tenant queries FAILED ({r['error'][:120]})" if r["failed"] else ""))
    print(f"  (d) shared collections, Chroma's own tenant-filtered query at {args.tenants * args.concepts:,} records: "
          f"p50 {ms(shared['p50']):.1f} ms  p95 {ms(shared['p95']):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
