"""Load test: N concurrent chat sessions of T tenants against ONE concept memory and ONE served model.

Everything on loopback and bounded (``--seconds`` and ``--max-turns``): the large role is the demo's
protocol model behind a real ``transformers serve`` (``--large control`` swaps in a minimal in-process
OpenAI-compatible HTTP stub, to separate our overhead from the tiny model's), the small VLM is the tiny
Idefics3 (shared, thread-safe), memory is one embedded Chroma store holding every tenant, sessions are
one SQLite file. Each session thread alternates visual questions with registering a new concept in its
tenant (so reads and writes interleave across tenants). All tenants use the SAME concept names with
tenant-marked descriptions, so a leak cannot hide behind a name.

Checked at the end and printed: lost concept writes (registered but not listed), lost session turns
(answered but not in the thread), cross-tenant leaks (a recalled candidate of another tenant), p50/p95
turn and registration latency.

    python benchmarks/stress.py --sessions 6 --tenants 3 --seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0, help="stop starting new turns after this long")
    ap.add_argument("--max-turns", type=int, default=8, help="turns per session at most")
    ap.add_argument("--large", choices=["serve", "control"], default="serve")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ["LANGSMITH_TRACING"] = "false"
    import torch

    torch.set_num_threads(args.threads)
    from slc.agent.large_vlm import serve_local
    from slc.agent.settings import Settings
    from slc.agent.small_vlm import SmallVLM
    from slc.cat.render import render
    from slc.cat.world import make_world
    from slc.graphs.context import Context
    from slc.graphs.services import ServiceFactory
    from slc.graphs.sessions import open_graph
    from slc.graphs.turns import run_turn
    from slc.memory.embedders import get_image_embedder, get_text_embedder
    from slc.memory.store import ConceptMemory
    from slc.testing import build_protocol_vlm, build_tiny_clip, build_tiny_vlm

    work = Path(tempfile.mkdtemp(prefix="slc-stress-"))
    from slc.agent.settings import get_settings

    models = get_settings().models_dir  # reuses what `slc demo` built
    t0 = time.perf_counter()
    small_path = build_tiny_vlm("idefics3", models / "tiny-vlm-idefics3", seed=0)
    clip = build_tiny_clip(models / "tiny-clip", seed=0)
    proto = build_protocol_vlm(models / "demo-protocol-vlm")
    base = Settings(data_dir=work, image_encoder=str(clip), reflection_rounds=1)
    base = base.model_copy(update={"small": base.small.model_copy(update={"model": str(small_path), "max_new_tokens": 16})})
    img_emb, txt_emb = get_image_embedder(base), get_text_embedder(base)
    world = make_world(2, seed=0)
    tenants = [f"tenant{t}" for t in range(args.tenants)]
    for t, tenant in enumerate(tenants):
        with ConceptMemory(base, tenant=tenant, image_embedder=img_emb, text_embedder=txt_emb) as mem:
            for i, wc in enumerate(world):
                refs = [render(wc.tree, {"position": p}, size=64, seed=10 * t + i) for p in ("center", "top left")]
                mem.add(wc.name, refs, description=f"{wc.description} [owner {tenant}]", category=wc.tree.root)
    small = SmallVLM.from_pretrained(small_path, device="cpu", dtype="float32", max_new_tokens=16)
    photo = work / "photo.png"
    render(world.concepts[0].tree, {"position": "bottom left", "background": "beige"}, size=64, seed=3).save(photo)
    setup_s = time.perf_counter() - t0

    @contextlib.contextmanager
    def endpoint():
        if args.large == "serve":
            with serve_local(proto) as url:
                yield url, str(proto)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "product"))
            from conftest import ControlServer  # the loopback stub of the test suite

            from slc.testing import PROTOCOL_REPLY

            srv = ControlServer(PROTOCOL_REPLY)
            try:
                yield srv.url, "control"
            finally:
                srv.close()

    turn_lat: list[float] = []
    reg_lat: list[float] = []
    answered: dict[str, int] = {}
    written: dict[str, list[str]] = {t: [] for t in tenants}
    leaks: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    with endpoint() as (url, model_name):
        large_settings = base.large.model_copy(update={"base_url": url, "model": model_name, "max_tokens": 96,
                                                       "max_retries": 0, "timeout_s": 120})
        settings = base.model_copy(update={"large": large_settings})
        # one factory: one small VLM, one endpoint, every tenant's memory on one Chroma client
        services = ServiceFactory(settings, small_vlm=small)
        with open_graph(services=services) as graph:
            deadline = time.perf_counter() + args.seconds

            def session(j: int) -> None:
                tenant = tenants[j % args.tenants]
                thread = f"s{j}"
                ctx = Context(tenant=tenant)
                for k in range(args.max_turns):
                    if time.perf_counter() > deadline:
                        return
                    try:
                        t = time.perf_counter()
                        run_turn(graph, "Is <c001> in this photo?", str(photo), thread_id=thread, context=ctx,
                                 settings=settings)
                        dt = time.perf_counter() - t
                        cands = graph.get_state({"configurable": {"thread_id": thread}}).values["candidates"]
                        bad = [c.name for c in cands if f"[owner {tenant}]" not in c.concept.description]
                        with lock:
                            turn_lat.append(dt)
                            answered[thread] = answered.get(thread, 0) + 1
                            leaks.extend(f"{thread}:{n}" for n in bad)
                        if k % 2 == 0:
                            name = f"s{j}n{k}"
                            t = time.perf_counter()
                            services.memory(tenant).add(name, [render(world.concepts[1].tree, {"position": "right"}, size=64, seed=100 * j + k)],
                                                 description=f"new [owner {tenant}]")
                            with lock:
                                reg_lat.append(time.perf_counter() - t)
                                written[tenant].append(name)
                    except Exception as exc:  # noqa: BLE001 - counted and printed, the run goes on
                        with lock:
                            errors.append(f"{thread}: {type(exc).__name__}: {exc}")

            t_run = time.perf_counter()
            workers = [threading.Thread(target=session, args=(j,)) for j in range(args.sessions)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            run_s = time.perf_counter() - t_run
            lost_turns = 0
            for thread, n in answered.items():
                msgs = graph.get_state({"configurable": {"thread_id": thread}}).values.get("messages", [])
                lost_turns += max(0, min(2 * n, settings.max_history_messages) - len(msgs))
        services.close()

    lost_writes = 0
    for tenant, names in written.items():
        fresh = ConceptMemory(base, tenant=tenant, image_embedder=img_emb, text_embedder=txt_emb)
        listed = {c.name for c in fresh.list()}
        lost_writes += len(set(names) - listed)
        foreign = [c.name for c in fresh.list() if f"[owner {tenant}]" not in c.description]
        leaks.extend(f"{tenant}:list:{n}" for n in foreign)

    print(f"stress: {args.sessions} sessions x {args.tenants} tenants, large={args.large} ({url}), "
          f"torch threads={args.threads}, setup {setup_s:.1f}s, run {run_s:.1f}s (bound {args.seconds:.0f}s, "
          f"<= {args.max_turns} turns/session)")
    print(f"turns answered: {len(turn_lat)}  ({len(turn_lat) / run_s:.2f} turns/s)")
    print(f"turn latency     p50 {pct(turn_lat, 0.5) * 1000:.0f} ms   p95 {pct(turn_lat, 0.95) * 1000:.0f} ms   "
          f"max {max(turn_lat, default=float('nan')) * 1000:.0f} ms")
    print(f"register latency p50 {pct(reg_lat, 0.5) * 1000:.0f} ms   p95 {pct(reg_lat, 0.95) * 1000:.0f} ms   "
          f"({len(reg_lat)} concepts registered)")
    print(f"lost concept writes: {lost_writes}   lost session turns: {lost_turns}   cross-tenant leaks: {len(leaks)}   "
          f"errors: {len(errors)}")
    for e in (errors + leaks)[:10]:
        print("  ", e)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0 if not (lost_writes or lost_turns or leaks or errors) else 1


if __name__ == "__main__":
    sys.exit(main())
