"""``slc demo``: the whole system end to end, offline, in about a minute on 2 CPU cores.

What it does, in order (each step printed): take the shipped trained models (the small VLM: the identity
bank ``slc.training.bank.SHIPPED_IDENTITY_BANK``; the large role: ``slc.training.large_role.SHIPPED_LARGE_ROLE``;
both trained on the concept world by the commands in their manifests); serve the large role over the OpenAI
API with ``transformers serve`` (or in-process with ``--in-process``); register three concept-world concepts
(held-out ones: neither model saw them) from three photos each in a fresh memory under the demo folder; ask
about a query photo through the full graph, printing what each node did (recall hits, detections with
confidences, verdicts, loop-backs, answer) and appending every node event to a JSONL trace; check the final
report against the renderer's truth; then write a settings file (``slc.toml`` in the demo folder) pointing at
the models it ran and the memory and session it filled, and print the one command that continues the session
offline (``SLC_CONFIG=... slc chat --thread demo``, the large role in-process). Every service comes from one
:class:`~slc.graphs.services.ServiceFactory`, as in ``slc ask``.

What it means: both models know the concept world's rendered objects (shapes, colours, patterns, marks), not
real photos, and the large role answers the benchmark's question forms (yes/no, multiple choice), not free
chat. Recall by image uses the training-free object-histogram embedder (``SLC_IMAGE_ENCODER=object-histogram``).
With ``--small-model/--large-model/--base-url`` the demo runs your own checkpoints or endpoint instead.
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
#: (question, photo, concept asked about, is it truly in the photo): the query photo shows <c000>, not <c001>.
TURNS = (("Is <c000> in this image?\nAnswer Yes or No.", "photo.png", "c000", True),
         ("Is <c001> in this image?\nAnswer Yes or No.", "photo.png", "c001", False))
#: The demo's concepts: held-out test concepts of the identity benchmark (split 0), which neither shipped model
#: was trained on, registered as <c000>, <c001>, <c002>; the query photo shows the first one.
DEMO_CONCEPTS = (0, 1, 2)
PHOTO_FREE = {"position": "bottom left", "rotation": "30", "background": "pale green"}
PHOTO_SEED = 7
HONESTY = (
    "Offline default: the small VLM is the shipped identity bank and the large role the shipped concept-world "
    "large role, both ~1 M-parameter models trained on this project's synthetic concept world (they know its "
    "rendered objects, not real photos, and answer its question forms); the image encoder for recall by image is "
    "the training-free object histogram. The concepts below are held out: neither model saw them in training."
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
    from slc.training.large_role import shipped_large_role

    path = shipped_large_role()
    console.print(f"large role: the shipped concept-world large role at {path}")
    large = settings.large.model_copy(update={"model": str(path), "max_tokens": 48, "max_retries": 0, "timeout_s": 120})
    kept = large.model_copy(update={"model": f"{LOCAL_PREFIX}{path}", "base_url": None})
    if in_process:
        from slc.agent.local_chat import LocalChatVLM

        yield large, LocalChatVLM(model=str(path), max_tokens=48), "in-process (LocalChatVLM)", kept
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
             *(f"{k} = {toml(v)}" for k, v in (("model", settings.small.model), ("adapter_bank", settings.small.adapter_bank))
               if v is not None),
             f"max_new_tokens = {settings.small.max_new_tokens}", f"locate = {toml(settings.small.locate)}", "", "[large]",
             *(f"{k} = {toml(v)}" for k, v in large.items() if v is not None)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def register_samples(services: ServiceFactory, n: int = 3) -> tuple[list[Concept], list[Any]]:
    """Register ``n`` held-out concept-world concepts as <c000>, <c001>... from three photos each, as a user
    would: the identity comes from the small VLM reading the photos
    (:func:`~slc.graphs.registration.register_concept`), never from the renderer (nor its concept tree).
    Returns (concepts, the world concepts they show)."""
    from slc.graphs.registration import register_concept
    from slc.training.identity_data import make_split, registration_photos

    test = make_split(0).test
    shown = [test[i] for i in DEMO_CONCEPTS[:n]]
    out = [register_concept(services, f"c{i:03d}", registration_photos(wc, 64, seed=i)) for i, wc in enumerate(shown)]
    return out, shown


def _session(console: Console, services: ServiceFactory, root: Path) -> tuple[list[Turn], list[BaseMessage], Path, list[str]]:
    """Sample concepts in memory, the small VLM, then the session with every node event traced; returns the
    turns, the session's messages, the trace file and the check lines (final report vs. the renderer's truth)."""
    from slc.cat.render import render
    from slc.graphs.sessions import open_graph
    from slc.graphs.turns import JsonlTrace, run_turn

    t = time.perf_counter()
    with console.status("registering sample concepts..."):
        concepts, shown = register_samples(services)
    console.print(table(f"sample concepts (held-out concept-world instances), registered in {time.perf_counter() - t:.1f}s",
                        ("concept", "category (read off its photos)", "attributes", "images"),
                        ((c.token, c.category or "", ", ".join(f"{k}: {v}" for k, v in (c.identity.attributes if c.identity else {}).items()),
                          str(len(c.images))) for c in concepts)))
    photo = root / "photo.png"
    render(shown[0].tree, PHOTO_FREE, size=64, seed=PHOTO_SEED).save(photo)
    console.print(f"query photo: {photo} (shows <c000> at the {PHOTO_FREE['position']}; <c001> is NOT in it)")
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

    turns, checks = [], []
    with open_graph(services=services) as graph:
        for i, (question, photo_name, concept, truth) in enumerate(TURNS, 1):
            console.rule(f"turn {i}: {question.splitlines()[0]}" + (f"  [photo {photo_name}]" if photo_name else ""))
            turn = run_turn(graph, question, str(root / photo_name) if photo_name else None, thread_id=THREAD,
                            settings=services.settings, on_event=on_event)
            console.print(f"turn {i}: {turn.result.large_vlm_calls} large-VLM call(s), {turn.loop_backs} loop-back(s), "
                          f"{turn.seconds:.1f}s")
            turns.append(turn)
            got = next((f.present for f in turn.result.final if f.concept == concept), "missing")
            want = "true" if truth else "false"
            checks.append(f"check: <{concept}> present={got} (truth: {want}, it is {'' if truth else 'NOT '}in the photo): "
                          f"{'yes' if got == want else 'NO'}")
            answer, right = turn.result.answer.text.strip(), "Yes" if truth else "No"
            checks.append(f"check: turn {i} answer {answer!r} (right answer: {right!r}): {'yes' if answer == right else 'NO'}")
        history = graph.get_state({"configurable": {"thread_id": THREAD}}).values.get("messages", [])
    return turns, history, trace_path, checks


def run_demo(
    *,
    small_model: str | None = None,
    large_model: str | None = None,
    base_url: str | None = None,
    in_process: bool = False,
    demo_dir: Path | None = None,
    console: Console | None = None,
) -> bool:
    """Run the demo; True when it showed everything it promises (every final report matches the truth when
    the small VLM and the large role are the shipped trained ones)."""
    from slc.agent.settings import get_settings
    from slc.graphs.services import ServiceFactory
    from slc.graphs.tracing import tracing_enabled
    from slc.training.bank import SHIPPED_IDENTITY_BANK

    console = console or Console()
    t_start = time.perf_counter()
    base = get_settings()
    root = _fresh_dir(Path(demo_dir or base.data_dir / "demo").expanduser().resolve())
    console.rule("slc demo")
    shipped_small = not (small_model or base.small.model or base.small.adapter_bank)
    shipped_large = not (large_model or base_url)
    if shipped_small and shipped_large:
        console.print(f"[yellow]{HONESTY}[/yellow]")

    # 1. models: the shipped trained ones unless configured or given
    t = time.perf_counter()
    # recall by image: the configured encoder, else the training-free object histogram (no model to build)
    encoder = base.image_encoder or "object-histogram"
    # the shipped bank decides by its reference head and locates with it (no generation)
    small = base.small.model_copy(update={"model": small_model, "adapter_bank": None} if small_model else
                                  {"adapter_bank": SHIPPED_IDENTITY_BANK} if shipped_small else {})
    console.print(f"small VLM: {small.model or ''}{' + ' if small.model and small.adapter_bank else ''}"
                  f"{('bank ' + str(small.adapter_bank)) if small.adapter_bank else ''}"
                  f"\nimage encoder: {encoder}  ({time.perf_counter() - t:.1f}s)")
    settings = base.model_copy(update={"data_dir": root, "image_encoder": encoder, "reflection_rounds": 1, "small": small})

    # 2. the large role, then every service from one factory (3. memory + small VLM, 4. the session)
    with _large_role(console, settings, large_model=large_model, base_url=base_url, in_process=in_process) as (
            large_settings, large, where, kept_large):
        settings = settings.model_copy(update={"large": large_settings})
        services = ServiceFactory(settings, large_vlm=large)
        try:
            services.large_vlm()  # built (and its endpoint checked) before anything else runs
            turns, history, trace_path, checks = _session(console, services, root)
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
    answered = len(turns) == len(TURNS) and all(t.result.answer.text for t in turns) and len(history) == 2 * len(TURNS)
    console.print(f"check: {len(TURNS)} turns answered, session holds {len(history)} messages: {'yes' if answered else 'NO'}")
    console.print(f"reflection: {loops} loop-back(s), {sum(t.result.large_vlm_calls for t in turns)} large-VLM call(s)")
    for line in checks:
        console.print(line, highlight=False, markup=False)
    correct = all(line.endswith("yes") for line in checks)
    console.print(f"demo wall time: {time.perf_counter() - t_start:.1f}s")
    return answered and (correct or not (shipped_small and shipped_large))


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
