"""Loaders of the field's published annotation files, and the registry ``slc eval`` picks them from.

Why loaders read files as published: a benchmark's quirks (a dict keyed by concept then image path, a singular
``option`` key in RAP's text QA, sharegpt conversations in SLC's copies, RAP's duplicated positives) are part
of what a score means. Each loader turns one file into typed items (:mod:`slc.evals.items`) and says in the
load report what it removed and why; the folder layouts of MC-LLaVA and MyVLM live in
:mod:`slc.evals.mcllava` and :mod:`slc.evals.myvlm`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from slc.evals.annotations import concept_tags, dedup, expect, name_concept, read_json, split_options, strip_image_tag
from slc.evals.items import BenchmarkFormatError, ChoiceItem, LoadedBenchmark, OpenVQAItem, RecognitionItem, finish_load
from slc.evals.mcllava import load_mcllava_native
from slc.evals.myvlm import load_myvlm_captions
from slc.evals.paths import normalize_image_path
from slc.evals.quality import RepeatLog

RAP_QUIRK = "positives repeated as type 'negative' with correct_answer true"


# ----------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------
def load_yollava_visual_qa(path: Path, root: Path | None = None, benchmark: str = "yollava-vqa") -> LoadedBenchmark:
    """Yo'LLaVA / RAP ``yollava-visual-qa.json``: concept -> image path -> {question, options{A,B}, correct_answer}."""
    path = Path(path)
    data = read_json(path)
    expect(isinstance(data, dict), path, "expected an object keyed by concept")
    items: list[ChoiceItem] = []
    for concept, per_image in data.items():
        expect(isinstance(per_image, dict), path, f"concept {concept!r}: expected image path -> question")
        for image, q in per_image.items():
            expect(isinstance(q, dict) and {"question", "options", "correct_answer"} <= set(q), path,
                   f"{concept}/{image}: needs question, options, correct_answer")
            rel = normalize_image_path(image)
            items.append(ChoiceItem(
                id=f"{concept}/{rel}", benchmark=benchmark, concepts=[concept],
                question=name_concept(q["question"], concept), images=[rel],
                options=dict(q["options"]), answer=str(q["correct_answer"]).strip().upper(),
            ))
    return finish_load(benchmark, path, items, root)


def load_yollava_text_qa(path: Path, root: Path | None = None, benchmark: str = "yollava-text-qa") -> LoadedBenchmark:
    """RAP's ``yollava-text-only-qa.json``: concept -> "0".. -> {question, option (singular!), correct_answer}."""
    path = Path(path)
    data = read_json(path)
    expect(isinstance(data, dict), path, "expected an object keyed by concept")
    items: list[ChoiceItem] = []
    for concept, per_q in data.items():
        expect(isinstance(per_q, dict), path, f"concept {concept!r}: expected index -> question")
        for idx, q in per_q.items():
            options = q.get("option", q.get("options"))  # RAP's file says `option`; accept the plural too
            expect(isinstance(options, dict) and "question" in q and "correct_answer" in q, path,
                   f"{concept}/{idx}: needs question, option, correct_answer")
            items.append(ChoiceItem(
                id=f"{concept}/{idx}", benchmark=benchmark, concepts=[concept],
                question=name_concept(q["question"], concept), options=dict(options),
                answer=str(q["correct_answer"]).strip().upper(),
            ))
    return finish_load(benchmark, path, items, root)


def load_rap_recognition(path: Path, root: Path | None = None, benchmark: str = "rap-recognition") -> LoadedBenchmark:
    """RAP's ``recognition_test.json``, with its duplicated-positive quirk removed.

    The file lists each positive (image, concept) pair twice: once as type "positive" and once more as type
    "negative" with ``correct_answer: true``. Scoring the file as is counts positives twice and puts 333
    "yes" answers among the negatives. We keep one row per (image, concept), take the truth from
    ``correct_answer``, and say how many rows were dropped. Both the current layout (``yollava-data/...``)
    and the older one (``benchmark_data/yollava-data/...``) resolve under the same ``--root``.
    """
    path = Path(path)
    data = read_json(path)
    expect(isinstance(data, list), path, "expected a list of {image, question, concept, type, correct_answer}")
    seen: dict[tuple[str, str], tuple[RecognitionItem, dict]] = {}
    repeats = RepeatLog()
    conflicting = 0
    for i, row in enumerate(data):
        expect(isinstance(row, dict) and {"image", "concept", "correct_answer"} <= set(row), path,
               f"row without image/concept/correct_answer: {str(row)[:120]}")
        rel = normalize_image_path(row["image"])
        concept = row["concept"]
        expected = bool(row["correct_answer"])
        key = (rel, concept)
        if key in seen:
            kept, kept_row = seen[key]
            if kept.expected != expected:
                conflicting += 1
                continue
            quirk = expected and row.get("type") != kept_row.get("type")  # the positive twin typed "negative"
            repeats.add(f"row {i}", kept.id, json.dumps(row, sort_keys=True), {json.dumps(kept_row, sort_keys=True)},
                        kind=RAP_QUIRK if quirk else None)
            continue
        item = RecognitionItem(
            id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
            question=strip_image_tag(row.get("question", f"Is <{concept}> in this image?")),
            images=[rel], expected=expected, present={concept: expected},
            kind="positive" if expected else "negative: another concept's image",
        )
        seen[key] = (item, row)
    expect(conflicting == 0, path, f"{conflicting} (image, concept) pairs appear with both answers")
    items = [item for item, _ in seen.values()]
    notes = [f"{len(data)} rows -> {len(items)} (image, concept) pairs"] if repeats.total else []
    return finish_load(benchmark, path, items, root, repeats=repeats, notes=notes)


def load_sharegpt_eval(path: Path, root: Path | None = None, benchmark: str | None = None) -> LoadedBenchmark:
    """The SLC authors' sharegpt-style eval files (``yollava_eval__*.json``, ``mc_eval__*.json``).

    Shape: concept (or scenario ``A_B``) -> list of {conversations [system, human, assistant], images?, gt?,
    is_positive?, concept_to_check?, present_situations?}. Rows with ``is_positive`` are recognition items
    (MC-LLaVA multi-concept recognition); rows whose ``gt`` is a letter and whose question lists options are
    multiple choice; any other ``gt`` is an open-VQA reference. Repeats (same image, same question and options
    once the options' punctuation is set aside, same answer) are dropped; the report counts rows identical to
    the kept one apart from rows that differ from it only in punctuation or spacing. Items of a multi-concept
    scenario key (``A_B``) cluster by scenario: they share concepts and images.
    """
    path = Path(path)
    benchmark = benchmark or path.stem
    data = read_json(path)
    expect(isinstance(data, dict), path, "expected an object keyed by concept or scenario")
    items: list = []
    seen: dict[tuple, tuple[str, set[str]]] = {}  # signature -> (kept row's id, every raw row seen for it)
    typos: Counter[str] = Counter()
    repeats = RepeatLog()
    for key, rows in data.items():
        expect(isinstance(rows, list), path, f"{key!r}: expected a list of conversations")
        for i, row in enumerate(rows):
            conv = row.get("conversations") if isinstance(row, dict) else None
            expect(isinstance(conv, list) and bool(conv), path, f"{key}[{i}]: no conversations")
            system = next((m["value"] for m in conv if m.get("from") == "system"), None)
            human = next((m["value"] for m in conv if m.get("from") in ("human", "user")), None)
            expect(human is not None, path, f"{key}[{i}]: no human turn")
            images = [normalize_image_path(p) for p in row.get("images", [])]
            stem_text = re.split(r"\nRULE:", strip_image_tag(human))[0].strip()
            base = dict(id=f"{key}/{i}", benchmark=benchmark, images=images, system=system,
                        group=_sharegpt_group(images), cluster=key if "_" in key else None)
            sig: tuple
            if "is_positive" in row:
                checked = list(row.get("concept_to_check") or [])
                present = {k: bool(v) for k, v in (row.get("present_situations") or {}).items()}
                positive = bool(row["is_positive"])
                kind = ("positive" if positive else
                        "negative: partly present" if any(present.get(c) for c in checked) else
                        "negative: none present")
                sig = ("rec", tuple(images), tuple(checked), positive)
                item = RecognitionItem(concepts=checked, question=stem_text, expected=positive, present=present,
                                       kind=kind, **base)
            else:
                expect("gt" in row, path, f"{key}[{i}]: neither gt nor is_positive")
                gt = str(row["gt"]).strip()
                known = key.split("_")
                named = concept_tags(stem_text)
                typos.update(n for n in named if n not in known)
                concepts = dedup([n for n in named if n in known] or known)
                split = split_options(stem_text)
                if split is not None and re.fullmatch(r"[A-H]", gt.upper()):
                    stem, options = split
                    expect(gt.upper() in options, path, f"{key}[{i}]: gt {gt!r} not among options {list(options)}")
                    item = ChoiceItem(concepts=concepts, question=stem, options=options, answer=gt.upper(), **base)
                    sig = ("choice", tuple(images), stem, tuple(options.items()), gt.upper())
                else:
                    item = OpenVQAItem(concepts=concepts, question=stem_text, reference=gt, **base)
                    sig = ("open", tuple(images), stem_text, gt)
            raw = json.dumps(row, sort_keys=True)
            if sig in seen:
                kept_id, raws = seen[sig]
                repeats.add(f"{key}[{i}]", kept_id, raw, raws)
                raws.add(raw)
                continue
            seen[sig] = (f"{key}[{i}]", {raw})
            items.append(item)
    notes = []
    if typos:
        notes.append(f"questions name concepts not in their key (typos in the file, the key's concepts are used): "
                     f"{dict(typos)}")
    return finish_load(benchmark, path, items, root, repeats=repeats, notes=notes)


def _sharegpt_group(images: list[str]) -> str:
    if not images:
        return "text"
    p = images[0]
    if "/multi/" in p:
        return "multi"
    if "/concept/" in p or p.startswith("yollava-data/"):
        return "single"
    return "image"


# ----------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------
class BenchmarkSpec(BaseModel):
    """A named benchmark: which loader reads which published file (relative to an annotations folder)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str
    annotation: str | None = Field(description="Path of the annotation file under the annotations folder; None = "
                                   "the dataset root itself is the annotation (folder layouts).")
    loader: Callable[..., LoadedBenchmark]


def _spec(name: str, description: str, annotation: str | None, loader: Callable[..., LoadedBenchmark]) -> BenchmarkSpec:
    return BenchmarkSpec(name=name, description=description, annotation=annotation, loader=loader)


def _sharegpt(name: str) -> Callable[..., LoadedBenchmark]:
    def load(path: Path, root: Path | None = None) -> LoadedBenchmark:
        return load_sharegpt_eval(path, root, benchmark=name)

    return load


def _mcllava(task: str, name: str) -> Callable[..., LoadedBenchmark]:
    def load(path: Path, root: Path | None = None) -> LoadedBenchmark:
        return load_mcllava_native(root or path, task, benchmark=name)  # type: ignore[arg-type]

    return load


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        _spec("yollava-vqa", "Yo'LLaVA visual QA (170, two options)", "yollava/yollava-visual-qa.json",
              load_yollava_visual_qa),
        _spec("rap-yollava-vqa", "RAP's copy of Yo'LLaVA visual QA (one label fixed)", "rap/yollava-visual-qa.json",
              lambda p, r=None: load_yollava_visual_qa(p, r, benchmark="rap-yollava-vqa")),
        _spec("yollava-text-qa", "Yo'LLaVA text-only QA, RAP's file (400; 390 'A')", "rap/yollava-text-only-qa.json",
              load_yollava_text_qa),
        _spec("rap-recognition", "RAP recognition on Yo'LLaVA test images (333 pos + 12,987 neg)",
              "rap/recognition_test.json", load_rap_recognition),
        _spec("slc-yollava-qa", "SLC copy: Yo'LLaVA text QA", "slc/yollava_eval__qa.json", _sharegpt("slc-yollava-qa")),
        _spec("slc-yollava-sqa", "SLC copy: Yo'LLaVA image QA (sqa)", "slc/yollava_eval__sqa.json",
              _sharegpt("slc-yollava-sqa")),
        _spec("slc-yollava-vqa", "SLC copy: Yo'LLaVA visual QA", "slc/yollava_eval__vqa.json",
              _sharegpt("slc-yollava-vqa")),
        _spec("mc-qa-single", "MC-LLaVA text choice, single concept (SLC copy)", "slc/mc_eval__qa_single.json",
              _sharegpt("mc-qa-single")),
        _spec("mc-qa-multi", "MC-LLaVA text choice, multi concept (SLC copy)", "slc/mc_eval__qa_multi.json",
              _sharegpt("mc-qa-multi")),
        _spec("mc-vqa-single", "MC-LLaVA visual choice, single concept (SLC copy)", "slc/mc_eval__vqa_single.json",
              _sharegpt("mc-vqa-single")),
        _spec("mc-vqa-multi", "MC-LLaVA visual choice, multi concept (SLC copy)", "slc/mc_eval__vqa_multi.json",
              _sharegpt("mc-vqa-multi")),
        _spec("mc-rec-multi", "MC-LLaVA multi-concept recognition (SLC copy)", "slc/mc_eval__rec_multi.json",
              _sharegpt("mc-rec-multi")),
        _spec("myvlm-captions", "MyVLM captioning (<root>/<concept>/captions[_augmented].json)", None,
              lambda p, r=None: load_myvlm_captions(r or p)),
        _spec("mc-llava-choice", "MC-LLaVA visual choice, native layout (choice.json)", None,
              _mcllava("choice", "mc-llava-choice")),
        _spec("mc-llava-text-qa", "MC-LLaVA text-only choice, native layout (qa.json)", None,
              _mcllava("text", "mc-llava-text-qa")),
        _spec("mc-llava-vqa", "MC-LLaVA open VQA, native layout (vqa.json, char-BLEU)", None,
              _mcllava("vqa", "mc-llava-vqa")),
        _spec("mc-llava-captions", "MC-LLaVA caption recall, native layout (test images + position.json)", None,
              _mcllava("caption", "mc-llava-captions")),
    ]
}

#: Files of the published annotation folders that are not evaluation items, and what they are for instead.
NOT_EVAL_FILES = {
    "database.json": "RAP's concept database (descriptions + reference images), not a benchmark: import it with "
                     "`slc concept import rap FILE`",
    "file-list.txt": "Yo'LLaVA's list of image paths (what --root must contain), not a benchmark",
}


def find_annotation(spec: BenchmarkSpec, search: Iterable[Path]) -> Path | None:
    """Look for the spec's file as ``<dir>/<annotation>`` then ``<dir>/<basename>`` in each search folder."""
    if spec.annotation is None:
        return None
    for d in search:
        for cand in (Path(d) / spec.annotation, Path(d) / Path(spec.annotation).name):
            if cand.is_file():
                return cand
    return None


def benchmark_for_file(path: Path) -> str:
    """The registered benchmark a published annotation file belongs to (``slc eval FILE``).

    Matched on the file's folder and name as published (``rap/yollava-visual-qa.json`` is RAP's copy,
    ``yollava/yollava-visual-qa.json`` Yo'LLaVA's); a file that is not an evaluation file says what it is.
    """
    path = Path(path)
    if path.name in NOT_EVAL_FILES:
        raise BenchmarkFormatError(f"{path} is {NOT_EVAL_FILES[path.name]}")
    named = [s for s in BENCHMARKS.values() if s.annotation and Path(s.annotation).name == path.name]
    same_folder = [s for s in named if Path(str(s.annotation)).parent.name == path.parent.name]
    chosen = same_folder or named
    if not chosen:
        known = sorted(str(s.annotation) for s in BENCHMARKS.values() if s.annotation)
        raise BenchmarkFormatError(f"{path.name} is not an annotation file slc knows; known: {', '.join(known)}")
    return chosen[0].name


def load_benchmark(name: str, root: Path | None = None, annotations: Path | None = None,
                   search: Iterable[Path] = ()) -> LoadedBenchmark:
    """Load a registered benchmark. ``annotations`` is the file (or a folder to search); else ``root`` and
    ``search`` folders are searched for the published file name."""
    if name not in BENCHMARKS:
        raise BenchmarkFormatError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if spec.annotation is None:
        folder = Path(annotations or root or "")
        if not folder.is_dir():
            raise BenchmarkFormatError(f"{name} reads a dataset folder: pass --root DIR")
        return spec.loader(folder, folder)
    if annotations is not None and Path(annotations).is_file():
        path = Path(annotations)
    else:
        dirs = [Path(annotations)] if annotations is not None else []
        dirs += [Path(root)] if root is not None else []
        dirs += [Path(d) for d in search]
        path = find_annotation(spec, dirs)
        if path is None:
            raise FileNotFoundError(
                f"{spec.annotation} not found under {', '.join(map(str, dirs)) or '(no folder given)'}; "
                "pass --annotations FILE or set SLC_EVAL_ANNOTATIONS_DIR"
            )
    return spec.loader(path, root)


__all__ = ["BENCHMARKS", "BenchmarkSpec", "NOT_EVAL_FILES", "benchmark_for_file", "find_annotation",
           "load_benchmark", "load_rap_recognition", "load_sharegpt_eval", "load_yollava_text_qa",
           "load_yollava_visual_qa"]
