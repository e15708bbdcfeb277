"""The modes compared side by side (issue 14, part 3): large-desc, large-refs, slc-r2, slc-paper, injected
small-model errors, and the rate of wrong presence claims in final answers.

TEST DOUBLES (declared): the large VLM is a LangChain fake chat model (``RuleChatModel`` below, a
``BaseChatModel`` answering by the kind of prompt it is sent: verify JSON, the paper's yes/no JSON, the answer
JSON, or "Yes" for a single-model question; it records every call); the injection's rate test wraps a
scripted detector (``FixedDetector``). The end-to-end test runs the real SmallVLM on the tiny random
Idefics3 checkpoint and the real ConceptMemory (tiny random CLIP) through the eval runner and report: its
answers mean nothing, the test checks plumbing, costs, flips and the report.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image
from typer.testing import CliRunner

from slc.agent.detection import ConceptQuery, Detection
from slc.evals.injection import ErrorInjection, InjectedSmallVLM, inject_errors, injection_scope
from slc.evals.items import ChoiceItem, LoadedBenchmark, LoadReport, RecognitionItem
from slc.evals.presence import load_presence, presence_counts
from slc.evals.report import summarize, write_report
from slc.evals.runner import ResultRow

NEW_MODES = ["large-desc", "large-refs", "slc-r2", "slc-paper"]


# -- test doubles ------------------------------------------------------------------------------------------
def _text(m: BaseMessage) -> str:
    c = m.content
    return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if isinstance(p, dict))


class RuleChatModel(BaseChatModel):
    """TEST DOUBLE for the large VLM (a LangChain fake chat model): a reply per kind of prompt, calls recorded."""

    calls: list[list[BaseMessage]] = []
    paper_answer: tuple[str, str] = ("yes", "no")

    @property
    def _llm_type(self) -> str:
        return "rule-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"rule": "v1"}

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        last = _text(messages[-1])
        if '"verdicts"' in last:  # our batched verification: agree with every claim
            ids = re.findall(r'"id": "(c\d+)"', last)
            text = json.dumps({"verdicts": [{"id": i, "verdict": "agree", "visible": True} for i in ids]})
        elif '"q1"' in last:  # the paper's two questions
            text = json.dumps({"q1": self.paper_answer[0], "q2": self.paper_answer[1]})
        elif '"answer"' in last:  # the graph's answer call
            text = json.dumps({"answer": "Yes", "concepts_used": []})
        else:  # a single-model eval question
            text = "Yes"
        msg = AIMessage(content=text, usage_metadata={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class FixedDetector:
    """TEST DOUBLE for the small VLM: every concept gets ``status`` (the JSON reply it "wrote" kept as raw)."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.bank = None

    def detect_batch(self, images, concepts, **kwargs) -> list[list[Detection]]:
        raw = '{"%s": {"present": false, "location-absolute": "top left", "location-relative": "on the sofa"}}'
        return [[Detection(concept=q.name, status=self.status, confidence=0.8 if self.status == "present" else 0.3,
                           raw_output=raw % q.name, json_present=self.status == "present",
                           location_absolute="centre" if self.status == "present" else None)
                 for q in concepts] for _ in images]


# -- injection ---------------------------------------------------------------------------------------------
def _flipped(vlm: InjectedSmallVLM, n: int, concept: str = "bo") -> set[int]:
    out = set()
    for i in range(n):
        with injection_scope(f"img/{i}.png") as log:
            (d,) = vlm.detect("unused", [ConceptQuery(name=concept)])
        if log:
            out.add(i)
    return out


@pytest.mark.parametrize(("status", "fp", "fn"), [("absent", 0.2, 0.0), ("present", 0.0, 0.3), ("absent", 0.05, 0.9)])
def test_injection_flips_at_the_requested_rate_deterministically(status, fp, fn) -> None:
    n = 1000
    rate = fp if status == "absent" else fn
    vlm = inject_errors(FixedDetector(status), ErrorInjection(fp=fp, fn=fn, seed=0))
    flips = _flipped(vlm, n)
    tolerance = 4 * math.sqrt(n * rate * (1 - rate))  # 4 binomial standard deviations
    assert abs(len(flips) - n * rate) <= tolerance, (len(flips), n * rate, tolerance)
    assert _flipped(vlm, n) == flips  # the same seed flips the same claims
    other = _flipped(inject_errors(vlm, ErrorInjection(fp=fp, fn=fn, seed=1)), n)
    assert other != flips and abs(len(other) - n * rate) <= tolerance
    # the other concept of the same photos draws independently
    assert _flipped(vlm, n, concept="kiki") != flips


def test_flipped_claims_look_real_and_are_recorded() -> None:
    vlm = inject_errors(FixedDetector("absent"), ErrorInjection(fp=1.0, fn=1.0))
    with injection_scope("a.png") as log:
        (d,) = vlm.detect("unused", [ConceptQuery(name="bo")], round=1)
    assert (d.status, d.location_absolute, d.location_relative) == ("present", "top left", "on the sofa")
    assert d.confidence == pytest.approx(0.7) and d.json_present is True
    assert log == ["bo:absent->present@round1"]
    vlm = inject_errors(FixedDetector("present"), ErrorInjection(fp=1.0, fn=1.0))
    (d,) = vlm.detect("unused", [ConceptQuery(name="bo")])  # outside an item: keyed by the image itself
    assert (d.status, d.location_absolute, d.json_present) == ("absent", None, False) and d.confidence < 0.5
    assert inject_errors(FixedDetector("unknown"), ErrorInjection(fp=1.0, fn=1.0)).detect(
        "x", [ConceptQuery(name="bo")])[0].status == "unknown"  # no claim, never flipped
    assert ErrorInjection.parse("fp=0.2, fn=0.1,seed=3") == ErrorInjection(0.2, 0.1, 3)
    assert ErrorInjection.parse("fn=0.5") == ErrorInjection(0.0, 0.5, 0)
    for bad in ("fp=2", "x=1", "fp", "seed=1", "fp=a"):
        with pytest.raises(ValueError, match="inject-errors"):
            ErrorInjection.parse(bad)


# -- the wrong-presence metric -----------------------------------------------------------------------------
def _rec(i: int, concept: str, expected: bool, image: str) -> RecognitionItem:
    return RecognitionItem(id=f"r{i}", benchmark="t", concepts=[concept], question=f"Is <{concept}> here?",
                           images=[image], expected=expected, present={concept: expected})


def _row(item, mode: str, reply: str | None = None, final: list[str] | None = None, error: str | None = None) -> ResultRow:
    return ResultRow(benchmark="t", mode=mode, item_id=item.id, variant="original", task=item.task, reply=reply,
                     error=error, meta={"final": final} if final is not None else {})


def test_wrong_presence_claims_on_hand_built_predictions(tmp_path: Path) -> None:
    concepts = [f"c{k}" for k in range(8)]
    items = []
    for k, c in enumerate(concepts):  # per concept: a photo it is in, a photo it is not in
        items += [_rec(2 * k, c, True, f"img/{c}.png"), _rec(2 * k + 1, c, False, f"img/other{k}.png")]
    rows = []
    for it in items:
        c, truth = it.concepts[0], it.expected
        k = int(c[1:])
        # single model: "Yes" but on the negatives of c0, c1 -> wrong on 6 negatives of 16 pairs
        rows.append(_row(it, "yes-man", reply="No" if k < 2 and not truth else "Yes"))
        # graph: wrong on the positives of c0..c3 (claims absent), unknown on c4's negative, another
        # concept in its report (not checked without presence.json)
        if k < 4 and truth:
            final = [f"{c}=false?"]
        elif k == 4 and not truth:
            final = [f"{c}=unknown"]
        else:
            final = [f"{c}={'true' if truth else 'false'}"]
        rows.append(_row(it, "graph", reply="whatever", final=[*final, *(["c7=true?"] if c != "c7" else [])]))
    scores = {s.mode: s for s in summarize("t", items, rows, n_boot=500)}
    yes, graph = scores["yes-man"], scores["graph"]
    assert (yes.presence_pairs, yes.presence_unclaimed) == (16, 0)
    assert yes.wrong_presence.value == pytest.approx(6 / 16)
    assert yes.wrong_presence.lo < 6 / 16 < yes.wrong_presence.hi and yes.wrong_presence.clusters == 8
    assert (graph.presence_pairs, graph.presence_unclaimed) == (16, 1)
    assert graph.wrong_presence.value == pytest.approx(4 / 16)
    # with presence.json: every concept of a graph's final report with a known truth is checked too
    (tmp_path / "presence.json").write_text(json.dumps(
        {"img/" + f"{c}.png": {c: True, "c7": False} for c in concepts} | {"./img/other0.png": {"c7": True}}))
    presence, path = load_presence([None, tmp_path])
    assert path == tmp_path / "presence.json" and presence["img/other0.png"] == {"c7": True}
    with_truth = {s.mode: s for s in summarize("t", items, rows, n_boot=200, presence=presence)}["graph"]
    # 8 positive photos: "c7=true?" is wrong on the 7 that are not c7's own; other0: c7 is there, claimed true
    assert with_truth.presence_pairs == 16 + 7 + 1
    assert with_truth.wrong_presence.value == pytest.approx((4 + 7) / 24)
    # a choice item with a photo counts only through presence.json and only for a graph's report
    choice = ChoiceItem(id="q", benchmark="t", concepts=["c0"], question="?", images=["img/c0.png"],
                        options={"A": "a", "B": "b"}, answer="A")
    assert presence_counts(choice, "A", {}, presence).tolist() == [0, 0, 0]
    assert presence_counts(choice, "A", {"final": ["c0=false", "c7=false"]}, presence).tolist() == [1, 2, 0]
    assert presence_counts(choice, "A", {"final": ["c0=false"]}, None).tolist() == [0, 0, 0]
    # an error row claims nothing
    assert presence_counts(items[0], None, {}, None).tolist() == [0, 1, 1]
    # in the table, beside the costs
    _, table = write_report("t", items, rows, tmp_path / "out", n_boot=200)
    assert "| wrong presence claims | calls/item |" in table
    assert re.search(r"\| yes-man \| 16 \|.*\| 0\.375 \[0\.\d{3}, 0\.\d{3}\] n=16 \| 0\.00 \|", table), table
    assert "0.250 [" in table and "n=16 (1 unclaimed)" in table
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "presence.json").write_text('{"a.png": {"c0": "yes"}}')
    with pytest.raises(ValueError, match="presence.json"):
        load_presence([tmp_path / "bad"])


# -- the modes, listed and run through the eval path on tiny models ----------------------------------------
def test_new_modes_are_listed() -> None:
    from slc.cli.app import app

    for flag in ("--list", "--list-modes"):
        res = CliRunner().invoke(app, ["eval", flag])
        assert res.exit_code == 0, res.output
        for mode in ["large", "small", "slc-noreflect", "slc", *NEW_MODES]:
            assert re.search(rf"^  {re.escape(mode)} +\S", res.output, re.M), (mode, res.output)
    res = CliRunner().invoke(app, ["eval", "rap-recognition", "--inject-errors", "fp=3"])
    assert res.exit_code == 2 and "fp must be between 0 and 1" in res.output


@pytest.fixture(scope="module")
def tiny_small_claims(tiny_vlm_path):
    """The tiny random SmallVLM, made to always claim (status from its Yes/No probabilities, any mass)."""
    from slc.agent.small_vlm import SmallVLM

    return SmallVLM.from_pretrained(tiny_vlm_path("idefics3"), device="cpu", dtype="float32", max_new_tokens=4,
                                    min_yes_no_mass=0.0)


def _photo(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (32, 32), colour)
    img.paste((255 - colour[0], 40, 90), (8, 8, 20, 24))
    img.save(path)
    return path


def test_new_modes_run_through_the_eval_path(tiny_small_claims, tiny_clip_path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, no_global_cache) -> None:
    from slc.agent.settings import get_settings
    from slc.evals.fingerprint import describe
    from slc.evals.modes import ModeContext, resolve_mode
    from slc.evals.runner import RunConfig, run_benchmark
    from slc.graphs.services import ServiceFactory

    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    get_settings.cache_clear()
    settings = get_settings().model_copy(update={"tenant": "eval-t"})
    root = tmp_path / "data"
    large = RuleChatModel(calls=[])
    injection = ErrorInjection(fp=0.5, fn=0.5, seed=0)
    services = ServiceFactory(settings, small_vlm=inject_errors(tiny_small_claims, injection), large_vlm=large)
    memory = services.memory()
    for name, colour in (("bo", (200, 30, 30)), ("kiki", (30, 30, 200))):
        refs = [_photo(tmp_path / "refs" / name / f"{i}.png", (colour[0], colour[1] + 20 * i, colour[2]))
                for i in range(3)]
        memory.add(name, refs, description=f"<{name}> is my {name} toy")
    items = []
    for i, (name, colour, expected) in enumerate([("bo", (200, 30, 30), True), ("bo", (30, 30, 200), False),
                                                  ("kiki", (30, 30, 200), True), ("kiki", (90, 160, 20), False)]):
        rel = f"test/{i}.png"
        _photo(root / rel, colour)
        items.append(RecognitionItem(id=f"{rel}|{name}", benchmark="t", concepts=[name], images=[rel],
                                     question=f"Is <{name}> in this image?", expected=expected,
                                     present={name: expected}))
    bench = LoadedBenchmark(items=items, report=LoadReport(benchmark="t", source="memory", items=len(items)))
    ctx = ModeContext(root=root, services=services)
    modes = ["large", "small", "slc-noreflect", "slc", *NEW_MODES]
    predictors = [resolve_mode(m, ctx) for m in modes]
    result = run_benchmark(bench, predictors, RunConfig(out_dir=tmp_path / "out", shuffled=False, progress=False))
    rows = {m: {r.item_id: r for r in result.rows if r.mode == m} for m in modes}
    assert all(len(rows[m]) == 4 and all(r.error is None for r in rows[m].values()) for m in modes)

    # fingerprints: the injection is part of every mode that uses the small VLM, and only of those
    configs = {p.name: describe(p) for p in predictors}
    for m in ("small", "slc-noreflect", "slc", "slc-r2", "slc-paper"):
        assert configs[m]["small"]["injected_errors"] == {"fp": 0.5, "fn": 0.5, "seed": 0}, m
        assert all("injected" in r.meta for r in rows[m].values()), m
    for m in ("large", "large-desc", "large-refs"):
        assert "small" not in configs[m] and all("injected" not in r.meta for r in rows[m].values())
    assert configs["slc-r2"]["graph"]["reflection_rounds"] == 2
    assert {k: configs["slc-paper"]["graph"][k] for k in ("reflection_style", "recheck_absent", "report_style",
                                                           "reflection_rounds")} == {
        "reflection_style": "per-concept", "recheck_absent": False, "report_style": "paper", "reflection_rounds": 0}
    assert "reflection_style" not in configs["slc"]["graph"]  # our modes keep the description they had
    assert configs["large-desc"]["concepts"]["descriptions"] and configs["large-refs"]["concepts"]["references"] == 2
    assert any(r.meta["injected"] for r in rows["small"].values())  # fp = fn = 0.5 on 4 claims: seed 0 flips some
    # the same photo and concept flip the same way in every mode (the small mode's claims are the graph's)
    for item_id, r in rows["small"].items():
        for m in ("slc-noreflect", "slc", "slc-paper"):
            assert set(r.meta["injected"]) <= {f for f in rows[m][item_id].meta["injected"]
                                               if f.endswith("@round0")}, (m, item_id)
    # costs: every large-VLM call counted; slc-paper spends one per present claim + the answer call
    for m in ("slc-noreflect", "slc", "slc-r2", "slc-paper"):
        assert all(r.usage.model_calls == r.meta["graph_large_vlm_calls"] for r in rows[m].values()), m
    for r in rows["slc-paper"].values():
        present_claims = len(r.meta["verdicts"])  # one verdict per call; absent claims are never asked about
        assert r.usage.model_calls == present_claims + 1, r.meta
    for r in rows["slc"].values():
        assert r.usage.model_calls == (2 if r.meta["verdicts"] else 1), r.meta
    assert all(r.usage.model_calls == 1 and r.usage.small_vlm_calls == 0
               for m in ("large", "large-desc", "large-refs") for r in rows[m].values())
    # what the single large model was told: memory's description, or its labelled reference photos
    singles = [c for c in large.calls if _text(c[-1]).endswith("Answer Yes or No.")]
    desc = [c for c in singles if "Facts about the user's personal concepts" in str(c[0].content)]
    assert len(desc) == 4 and '"description": "<bo> is my bo toy"' in str(desc[0][0].content)
    refs = [c for c in singles if "Reference photo(s) of <" in _text(c[-1])]
    assert len(refs) == 4
    parts = refs[0][-1].content
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "text", "image_url", "text"]
    assert parts[1]["image_url"]["detail"] == "low" and "detail" not in parts[4]["image_url"]
    # the report: every mode, the wrong-presence rate beside the costs
    scores, table = write_report("t", items, result.rows, tmp_path / "out", shuffled=False, n_boot=200)
    by_mode = {s.mode: s for s in scores if not s.baseline}
    assert set(by_mode) == set(modes)
    assert all(by_mode[m].presence_pairs == 4 for m in modes)
    assert by_mode["large"].wrong_presence.value == pytest.approx(0.5)  # always "Yes": wrong on both negatives
    assert "wrong presence claims" in table and "| slc-paper | 4 |" in table
    services.close()


def test_cli_inject_errors_and_presence_file(tiny_vlm_path, tiny_clip_path, tmp_path: Path, bench_dir: Path,
                                            yollava_paths, image_tree, monkeypatch: pytest.MonkeyPatch) -> None:
    from slc.agent.settings import get_settings
    from slc.cli.app import app

    rels = yollava_paths("test/shiba-gray/3.png", 1) + yollava_paths("train/shiba-gray/", 2)
    image_tree(tmp_path / "data", rels)
    (tmp_path / "data" / "presence.json").write_text(json.dumps({rels[0]: {"shiba-gray": True}}))
    monkeypatch.setenv("SLC_SMALL__MODEL", str(tiny_vlm_path("idefics3")))
    monkeypatch.setenv("SLC_SMALL__DEVICE", "cpu")
    monkeypatch.setenv("SLC_SMALL__DTYPE", "float32")
    monkeypatch.setenv("SLC_IMAGE_ENCODER", str(tiny_clip_path))
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["eval", "yollava-vqa", "--root", str(tmp_path / "data"), "--annotations",
                                   str(bench_dir), "--mode", "small", "--out", str(tmp_path / "out"),
                                   "--no-progress", "--cache", "none", "--inject-errors", "fp=0.3,fn=0.3,seed=2"])
    assert res.exit_code == 0, res.output
    assert "injected small-VLM errors: absent->present 0.3, present->absent 0.3, seed 2" in res.output
    assert f"presence truth: {tmp_path / 'data' / 'presence.json'} (1 images)" in res.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "yollava-vqa" / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["config"]["small"]["injected_errors"] == {"fp": 0.3, "fn": 0.3, "seed": 2} for r in rows)
    assert all(r["meta"]["injected"] == [] for r in rows)  # multiple choice: no presence claim to flip
    summary = (tmp_path / "out" / "yollava-vqa" / "summary.md").read_text()
    assert "injected small-VLM errors" in summary and "presence truth:" in summary
