"""``slc demo``: the whole system end to end, offline, in a few minutes on 2 CPU cores.

What it does, in order (each step printed): build or reuse the local models under ``settings.models_dir``;
serve the large role over the OpenAI API with ``transformers serve`` (or in-process with ``--in-process``);
register three concept-world concepts (``slc.cat``: rendered images with exact ground truth) in a fresh
memory under the demo folder; run a two-turn session through the full graph, printing what each node
did (recall hits, detections with confidences, verdicts, loop-backs, answer) and appending every node
event to a JSONL trace; then write a settings file (``slc.toml`` in the demo folder) pointing at the models
it ran and the memory and session it filled, print the one command that continues the session offline
(``SLC_CONFIG=... slc chat --thread demo``, the large role in-process), and check its own output. Every
service comes from one :class:`~slc.graphs.services.ServiceFactory`, as in ``slc ask``.

The offline default is honest about itself: the small model and the image encoder are RANDOM tiny models
and the large role is a tiny model taught one constant protocol reply (:mod:`slc.testing.protocol_vlm`),
so the answers show the plumbing, not understanding, unless a trained adapter bank is configured or real
checkpoints/endpoints are passed with ``--small-model/--large-model/--base-url``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console

from slc.agent.errors import SLCError
from slc.agent.large_vlm import LOCAL_PREFIX
from slc.agent.settings import LargeVLMSettings, Settings
from slc.cli.console import cli_errors, fail, table
from slc.cli.options import BaseUrlOpt, LargeOpt, SmallOpt

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

    from slc.cat.world import ConceptWorld
    from slc.graphs.services import ServiceFactory
    from slc.graphs.turns import Turn
    from slc.memory.store import ConceptMemory
    from slc.memory.types import Concept

DEMO_MARKER = ".slc-demo"
CONFIG_NAME = "slc.toml"
THREAD = "demo"
TURNS = (("Is <c001> in this photo?", True), ("What does <c000> look like?", False))
HONESTY = (
    "Offline default: the small VLM and the image encoder are RANDOM tiny models built on this machine, and the "
    "large role is a tiny model built to give one fixed protocol reply (verdict 'uncertain', so the reflection "
    "loop runs). The answers below are NOT meaningful beyond the plumbing (every node, call and loop runs for real)."
)


def _fresh_dir(path: Path) -> Path:
    """Empty the demo folder (only one the demo made: it carries a marker)."""
    if path.exists() and any(path.iterdir()) and not (path / DEMO_MARKER).exists():
        raise SLCError(f"{path} exists and was not made by `slc demo`; pass --dir with an empty or new folder.")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("made by slc demo; deleted and recreated on every run\n")
    return path


def format_event(ev: dict[str, Any]) -> list[str]:
    """Human lines for one node event (see slc.graphs.turns.summarize)."""
    node = ev["node"]
    if node == "recall":
        hits = ", ".join(f"<{c['concept']}> by {'+'.join(c['matched_by'])} ({c['score']:.2f})" for c in ev["candidates"])
        return [f"[recall]      candidates: {hits or 'none'}"]
    if node == "personalize":
        dets = ", ".join(f"<{d['concept']}> {d['status']} (conf {d['confidence']:.2f})" for d in ev["detections"])
        return [f"[personalize] round {ev['round']}: {dets or 'nothing to detect'}"]
    if node == "reflect":
        vs = ", ".join(f"<{v['concept']}> claim {v['claim']} -> {v['verdict']}" for v in ev["verdicts"])
        lines = [f"[reflect]     round {ev['round']}: {vs or 'no claim to verify'}"]
        if ev["loop_back"]:
            lines.append(f"[reflect]     LOOP-BACK to personalize for {', '.join('<%s>' % n for n in ev['loop_back'])}"
                         " (second pass with reference images and the verifier's feedback)")
        return lines + [f"[reflect]     note: {f}" for f in ev.get("flags", []) if "round" in f]
    if node == "reason":
        lines = [f"[reason]      answer ({'degraded' if ev['degraded'] else 'structured' if ev['structured'] else 'unstructured'}): "
                 f"{ev['answer']}"]
        lines += [f"[reason]      report: <{f['concept']}> present={f['present']} verified={f['verified']}" for f in ev["final"]]
        return lines
    return [f"[{node}] {json.dumps(ev)}"]


@contextlib.contextmanager
def _large_role(
    console: Console, settings: Settings, *, large_model: str | None, base_url: str | None, in_process: bool,
    models_dir: Path,
) -> Iterator[tuple[LargeVLMSettings, BaseChatModel | None, str, LargeVLMSettings]]:
    """(large settings, an in-process chat model or None, description, the large settings to keep after the
    demo) for the large role, served for the duration of the block; with None the service factory builds the
    model from the settings. What is kept never names the demo's own server (it is stopped when the demo
    ends): the offline default is kept as ``local:<checkpoint>``, which runs in-process."""
    if base_url or large_model:
        large = settings.large.model_copy(update={k: v for k, v in {"model": large_model, "base_url": base_url}.items() if v})
        if base_url and not large_model:
            large = large.model_copy(update={"model": "default"})
        yield large, None, f"{large.model} at {large.base_url or 'its provider'}", large
        return
    from slc.testing.protocol_vlm import build_protocol_vlm

    t = time.perf_counter()
    with console.status("building the demo's large-role model (first run only, ~1-2 min on 2 cores)..."):
        path = build_protocol_vlm(models_dir / "demo-protocol-vlm")
    console.print(f"large role: tiny protocol model at {path} ({time.perf_counter() - t:.1f}s)")
    large = settings.large.model_copy(update={"model": str(path), "max_tokens": 96, "max_retries": 0, "timeout_s": 120})
    kept = large.model_copy(update={"model": f"{LOCAL_PREFIX}{path}", "base_url": None})
    if in_process:
        from slc.agent.local_chat import LocalChatVLM

        yield large, LocalChatVLM(model=str(path), max_tokens=96), "in-process (LocalChatVLM)", kept
        return
    from slc.agent.large_vlm import serve_local

    t = time.perf_counter()
    with console.status("starting `transformers serve` on loopback..."):
        cm = serve_local(path)
        url = cm.__enter__()
    try:
        console.print(f"large role: `transformers serve` at {url} ({time.perf_counter() - t:.1f}s), OpenAI API")
        yield large.model_copy(update={"base_url": url}), None, f"transformers serve at {url}", kept
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)


def write_config(path: Path, settings: Settings) -> Path:
    """A settings file (``SLC_CONFIG``) with what the demo ran on: its data folder (memory, sessions), small
    VLM, image encoder and large role. API keys are never written (they stay in their variables)."""
    def toml(value: object) -> str:
        return json.dumps(str(value)) if isinstance(value, (str, Path)) else json.dumps(value)

    large = {"model": settings.large.model, "base_url": settings.large.base_url, "max_tokens": settings.large.max_tokens}
    lines = ["# Written by `slc demo`: the models it built and the memory and sessions it filled.",
             f"# Use it with: SLC_CONFIG={path} slc chat --thread {THREAD}",
             "# (SLC_* variables you set still take precedence over this file.)",
             f"data_dir = {toml(settings.data_dir)}", f"image_encoder = {toml(settings.image_encoder)}",
             f"reflection_rounds = {settings.reflection_rounds}", "", "[small]",
             f"model = {toml(settings.small.model)}", f"max_new_tokens = {settings.small.max_new_tokens}", "", "[large]",
             *(f"{k} = {toml(v)}" for k, v in large.items() if v is not None)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def register_samples(services: ServiceFactory, n: int = 3, seed: int = 0) -> tuple[list[Concept], ConceptWorld]:
    """Register ``n`` concept-world concepts (2 rendered reference images each) as a user would: the identity
    comes from the small VLM reading the photos (:func:`~slc.graphs.registration.register_concept`), never
    from the renderer; the concept tree is kept for CaT. Returns (concepts, world)."""
    from slc.cat.render import render
    from slc.cat.world import make_world
    from slc.graphs.registration import register_concept

    world = make_world(n, seed=seed)
    out = []
    for i, wc in enumerate(world):
        refs = [render(wc.tree, {"position": pos, "background": bg}, size=96, seed=seed + 10 * i + k)
                for k, (pos, bg) in enumerate((("center", "white"), ("top left", "pale blue")))]
        out.append(register_concept(services, wc.name, refs, description=wc.description, tree=wc.tree.to_dict()))
    return out, world


def _session(console: Console, services: ServiceFactory, root: Path) -> tuple[list[Turn], list[BaseMessage], Path]:
    """Sample concepts in memory, the small VLM, then the two-turn session with every node event traced."""
    from slc.cat.render import render
    from slc.graphs.sessions import open_graph
    from slc.graphs.turns import JsonlTrace, run_turn

    t = time.perf_counter()
    with console.status("registering sample concepts..."):
        concepts, world = register_samples(services)
    console.print(table(f"sample concepts (CaT concept world), registered in {time.perf_counter() - t:.1f}s",
                        ("concept", "category", "description", "images"),
                        ((c.token, c.category or "", c.description, str(len(c.images))) for c in concepts)))
    photo = root / "photo.png"
    render(world.get("c000").tree, {"position": "bottom left", "background": "beige", "clutter": "few"}, size=96, seed=7).save(photo)
    console.print(f"query photo: {photo} (shows <c000> at the bottom left; <c001> is NOT in it)")
    t = time.perf_counter()
    with console.status("loading the small VLM..."):
        services.small_vlm()
    console.print(f"small VLM loaded ({time.perf_counter() - t:.1f}s)")
    trace_path = root / "trace.jsonl"
    trace = JsonlTrace(trace_path)

    def on_event(ev: dict[str, Any]) -> None:
        trace(ev)
        for line in format_event(ev):
            console.print(line, highlight=False, markup=False)

    turns = []
    with open_graph(services=services) as graph:
        for i, (question, with_photo) in enumerate(TURNS, 1):
            console.rule(f"turn {i}: {question}" + (f"  [photo {photo.name}]" if with_photo else ""))
            turn = run_turn(graph, question, str(photo) if with_photo else None, thread_id=THREAD,
                            settings=services.settings, on_event=on_event)
            console.print(f"turn {i}: {turn.result.large_vlm_calls} large-VLM call(s), {turn.loop_backs} loop-back(s), "
                          f"{turn.seconds:.1f}s")
            turns.append(turn)
        history = graph.get_state({"configurable": {"thread_id": THREAD}}).values.get("messages", [])
    return turns, history, trace_path


def run_demo(
    *,
    small_model: str | None = None,
    large_model: str | None = None,
    base_url: str | None = None,
    in_process: bool = False,
    demo_dir: Path | None = None,
    console: Console | None = None,
) -> bool:
    """Run the demo; True when it showed everything it promises (for the offline default: a loop-back)."""
    from slc.agent.settings import get_settings
    from slc.graphs.services import ServiceFactory
    from slc.graphs.tracing import tracing_enabled
    from slc.testing import build_tiny_clip, build_tiny_vlm

    console = console or Console()
    t_start = time.perf_counter()
    base = get_settings()
    models_dir = base.models_dir
    offline_default = not (small_model or large_model or base_url)
    root = _fresh_dir(Path(demo_dir or base.data_dir / "demo").expanduser().resolve())
    console.rule("slc demo")
    bank = base.small.adapter_bank
    if offline_default:
        console.print(f"[yellow]{HONESTY}[/yellow]")
    if bank:
        console.print(f"A trained adapter bank is configured ({bank}): the small VLM's detections come from it.")
    elif small_model is None:
        console.print("No trained adapter bank (settings.small.adapter_bank): the small VLM is the random tiny model.")

    # 1. models (built once, reused from models_dir)
    t = time.perf_counter()
    with console.status("building / reusing the tiny local models..."):
        small_path = small_model or base.small.model or str(build_tiny_vlm("idefics3", models_dir / "tiny-vlm-idefics3", seed=0))
        encoder = base.image_encoder or str(build_tiny_clip(models_dir / "tiny-clip", seed=0))
    console.print(f"small VLM: {small_path}\nimage encoder: {encoder}  ({time.perf_counter() - t:.1f}s)")
    settings = base.model_copy(update={
        "data_dir": root, "image_encoder": encoder, "reflection_rounds": 1,
        "small": base.small.model_copy(update={"model": small_path, "max_new_tokens": 32 if offline_default else base.small.max_new_tokens}),
    })

    # 2. the large role, then every service from one factory (3. memory + small VLM, 4. the session)
    with _large_role(console, settings, large_model=large_model, base_url=base_url, in_process=in_process,
                     models_dir=models_dir) as (large_settings, large, where, kept_large):
        settings = settings.model_copy(update={"large": large_settings})
        services = ServiceFactory(settings, large_vlm=large)
        try:
            services.large_vlm()  # built (and its endpoint checked) before anything else runs
            turns, history, trace_path = _session(console, services, root)
        finally:
            services.close()  # embedded Chroma caches its system per path; a later demo in this process starts clean

    # where things are + self-check
    console.rule("summary")
    loops = sum(t.loop_backs for t in turns)
    console.print(f"large role: {where}")
    console.print(f"session DB: {settings.sessions_path} (thread '{THREAD}', {len(history)} messages)")
    config = write_config(root / CONFIG_NAME, settings.model_copy(update={"large": kept_large}))
    console.print(f"config: {config} (the demo's models and memory; the large role "
                  f"{'in-process' if kept_large.model.startswith(LOCAL_PREFIX) else kept_large.model})")
    # soft_wrap: a command is printed on one line, whatever the terminal's width, so it can be copied whole
    console.print(f"  continue the session:  SLC_CONFIG={config} slc chat --thread {THREAD}", highlight=False,
                  soft_wrap=True)
    console.print(f"  ask about a photo:     SLC_CONFIG={config} slc ask {root / 'photo.png'} "
                  f"\"Is <c000> in this photo?\"", highlight=False, markup=False, soft_wrap=True)
    console.print(f"trace: {trace_path} ({sum(len(t.events) for t in turns)} node events)")
    console.print("LangSmith: " + ("on (project from LANGSMITH_PROJECT / settings.tracing.project), images redacted"
                                   if tracing_enabled(settings) else "off (set LANGSMITH_TRACING=true and LANGSMITH_API_KEY to send traces)"))
    console.print(f"concept memory: {settings.chroma_path}")
    answered = len(turns) == 2 and all(t.result.answer.text for t in turns) and len(history) == 4
    console.print(f"check: two turns answered, session holds {len(history)} messages: {'yes' if answered else 'NO'}")
    if offline_default:
        console.print(f"check: reflection loop-back happened: {'yes' if loops else 'NO'} ({loops})")
    else:
        console.print(f"reflection loop-backs: {loops}")
    ok = answered and (loops >= 1 or not offline_default)
    if offline_default:
        console.print("[yellow]Reminder: tiny local models: answers are not meaningful beyond the plumbing.[/yellow]")
    console.print(f"demo wall time: {time.perf_counter() - t_start:.1f}s")
    return ok


@cli_errors
def demo(
    small_model: Optional[str] = SmallOpt,
    large_model: Optional[str] = LargeOpt,
    base_url: Optional[str] = BaseUrlOpt,
    in_process: bool = typer.Option(False, "--in-process", help="Run the local large model in this process instead of `transformers serve`."),
    demo_dir: Optional[Path] = typer.Option(None, "--dir", help="Where the demo's memory, sessions and trace go (default <data_dir>/demo)."),
) -> None:
    """Offline end-to-end demo: local models, sample concepts, a two-turn session with a reflection loop."""
    ok = run_demo(small_model=small_model, large_model=large_model, base_url=base_url, in_process=in_process,
                  demo_dir=demo_dir)
    if not ok:
        fail("the demo did not show what it should (see above).")


__all__ = ["CONFIG_NAME", "HONESTY", "demo", "format_event", "register_samples", "run_demo", "write_config"]
