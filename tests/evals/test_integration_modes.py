"""Integration ("Done when" of issue 8): the four modes + always-A compared in ONE run on the same items.

Real everything, tiny and random: the large VLM is `transformers serve` on a tiny Idefics3 checkpoint reached
over HTTP (ChatOpenAI); the small VLM is the real SmallVLM in-process on the same checkpoint; memory is the
real ConceptMemory on embedded Chroma (tiny random CLIP + MiniLM), filled by the eval's concept importer from
a synthetic Yo'LLaVA tree laid out with the real paths of file-list.txt. The run is interrupted in the middle
of the "slc" mode and resumed. Random models give meaningless answers: the test checks plumbing and costs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from slc.agent.large_vlm import build_large_vlm, serve_local
from slc.agent.settings import get_settings
from slc.evals.concepts import eval_tenant, import_benchmark_concepts
from slc.evals.datasets import load_benchmark
from slc.evals.modes import ModeContext, resolve_mode
from slc.evals.report import write_report
from slc.evals.runner import RunConfig, run_benchmark
from slc.graphs.services import ServiceFactory

pytestmark = pytest.mark.integration

MODES = ["always-A", "large", "small", "slc-noreflect", "slc"]


class Recorder:
    """Wraps a predictor: records which items reached it; raises KeyboardInterrupt after ``stop_after`` items."""

    def __init__(self, inner, stop_after: int | None = None) -> None:
        self.inner, self.name, self.stop_after, self.seen = inner, inner.name, stop_after, []

    def describe(self) -> dict:
        return self.inner.describe()  # the wrapped mode's configuration: resume keys on it

    def __call__(self, item):
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            raise KeyboardInterrupt("simulated interruption")
        self.seen.append(item.id)
        return self.inner(item)


def test_four_modes_one_run_interrupted_and_resumed(tiny_vlm_path, tiny_clip_path, tmp_path: Path, bench_dir: Path,
                                                    yollava_paths, image_tree, no_global_cache) -> None:
    from slc.agent.small_vlm import SmallVLM
    from slc.memory.embedders import HFImageEmbedder, SentenceTransformerTextEmbedder
    from slc.memory.store import ConceptMemory

    ckpt = tiny_vlm_path("idefics3")
    root = tmp_path / "data"
    rels = yollava_paths("test/shiba-gray/", 20) + yollava_paths("test/yuheng/", 2) + yollava_paths("test/bo/4.png", 1)
    for c in ("shiba-gray", "yuheng", "bo", "brown-duck"):
        rels += yollava_paths(f"train/{c}/", 2)
    image_tree(root, rels)
    vqa = load_benchmark("yollava-vqa", root=root, annotations=bench_dir)
    rec = load_benchmark("rap-recognition", root=root, annotations=bench_dir)

    settings = get_settings()
    settings = settings.model_copy(update={
        "tenant": eval_tenant("yollava"), "reflection_rounds": 1,
        "large": settings.large.model_copy(update={"model": str(ckpt), "max_tokens": 6, "max_retries": 0,
                                                   "timeout_s": 60, "max_image_side": 64})})
    memory = ConceptMemory(settings, image_embedder=HFImageEmbedder(tiny_clip_path, batch_size=4),
                           text_embedder=SentenceTransformerTextEmbedder())
    # concepts: train images + descriptions of the SLC authors' files; a second import changes nothing
    first = import_benchmark_concepts(memory, "yollava-vqa", root, [bench_dir])
    assert sorted(first.added) == ["bo", "brown-duck", "shiba-gray", "yuheng"] and not first.failed
    assert memory.get("bo").description.startswith("<bo> is")
    again = import_benchmark_concepts(memory, "rap-recognition", root, [bench_dir])
    assert again.added == [] and again.described == [] and len(again.skipped) == 4

    small = SmallVLM.from_pretrained(ckpt, device="cpu", dtype="float32", max_new_tokens=6)
    with serve_local(ckpt) as url:
        large = build_large_vlm(settings.large.model_copy(update={"base_url": url}))
        ctx = ModeContext(root=root, services=ServiceFactory(settings, memory=memory, small_vlm=small, large_vlm=large))
        modes = {m: Recorder(resolve_mode(m, ctx)) for m in MODES}
        results = {}
        for bench, shuffled in ((vqa, True), (rec, False)):
            cfg = RunConfig(out_dir=tmp_path / "out", limit=6, shuffled=shuffled, progress=False)
            n = 12 if shuffled else 6
            modes["slc"].stop_after = len(modes["slc"].seen) + 2  # crash after two "slc" items of this benchmark
            with pytest.raises(KeyboardInterrupt):
                run_benchmark(bench, list(modes.values()), cfg)
            modes["slc"].stop_after = None
            resumed = run_benchmark(bench, list(modes.values()), cfg)
            assert resumed.reused == {"always-A": n, "large": n, "small": n, "slc-noreflect": n, "slc": 2}
            assert not resumed.warnings and set(resumed.fingerprints) == set(MODES)
            assert resumed.ran == {"always-A": 0, "large": 0, "small": 0, "slc-noreflect": 0, "slc": n - 2}
            results[bench.report.benchmark] = (bench, cfg, resumed)
    # no item reached a model twice (the resumed run re-called nothing finished), and every item was answered
    for name, rec_ in modes.items():
        assert not [i for i, k in Counter(rec_.seen).items() if k > 1], name
    for bench_name, (bench, cfg, res) in results.items():
        n = 12 if bench_name == "yollava-vqa" else 6
        lines = res.results_file.read_text().splitlines()
        assert len(lines) == 5 * n  # complete, no duplicate rows in the file either
        by_mode = Counter(r.mode for r in res.rows)
        assert by_mode == {m: n for m in MODES}
        assert all(r.error is None and r.reply is not None for r in res.rows)
        rows = {m: [r for r in res.rows if r.mode == m] for m in MODES}
        # costs per mode: large = one HTTP call per item; small = local passes only; SLC: the graph's own
        # count equals what the LangChain callbacks saw (no cache here), and reflection costs more calls
        assert all(r.usage.model_calls == 1 and r.usage.small_vlm_calls == 0 for r in rows["large"])
        assert all(r.usage.model_calls == 0 and r.usage.small_vlm_calls >= 1 for r in rows["small"])
        for m in ("slc-noreflect", "slc"):
            assert all(r.usage.model_calls == r.meta["graph_large_vlm_calls"] for r in rows[m]), m
            assert all(r.usage.small_vlm_calls >= 1 and r.usage.input_tokens > 0 for r in rows[m]), m
        # every item names a registered concept or not; registered + named -> detected and (with reflection)
        # verified: noreflect never verifies (1 call), slc verifies once, +1 retry for malformed random output
        assert all(r.usage.model_calls == 1 and r.meta["verdicts"] == [] for r in rows["slc-noreflect"])
        verified = [r for r in rows["slc"] if r.meta["verdicts"]]
        assert verified and all(r.usage.model_calls >= 2 for r in verified)
        summary, table = write_report(bench_name, bench.available()[:6], res.rows, cfg.out_dir,
                                      shuffled=cfg.shuffled)
        got = Counter(s.mode for s in summary if not s.baseline)
        assert got == {m: 1 for m in MODES}, got
        for s in summary:
            if not s.baseline:  # one row per mode: file-order and shuffled scores side by side
                assert s.fingerprints == [res.fingerprints[s.mode]]
                assert (s.columns.get("accuracy_shuffled") is not None) == cfg.shuffled
        assert "| slc-noreflect | 6 |" in table
