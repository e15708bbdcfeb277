"""Typed benchmark items and loaders that read the field's annotation files exactly as they are published.

Why typed items: every benchmark of the field ships its own JSON shape (a dict keyed by concept then image path,
a singular ``option`` key in RAP's text QA, sharegpt conversations in SLC's copies, ...). The runner and the
metrics should not care: each loader turns one file into a list of four item kinds (multiple choice,
recognition, open VQA, caption) plus a :class:`LoadReport` that says what was read, what was removed
(duplicates, with the reason) and which images are missing under the user's dataset root. Missing images are
reported, never raised: annotation files are public, images often are not (Git LFS, Google Drive).

Item ids are stable across runs (they are derived from the file's own keys), so results can be resumed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from slc.agent.errors import SLCError

IMAGE_TAG = "<image>"
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s;?.!,]))([A-H])\s*[.:)]")


class BenchmarkFormatError(SLCError, ValueError):
    """An annotation file whose shape is not the one its loader reads (wrong file for this benchmark?)."""


# ----------------------------------------------------------------------------------------------------------
# Items
# ----------------------------------------------------------------------------------------------------------
class _ItemBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable id, unique within the benchmark (derived from the file's own keys).")
    benchmark: str
    concepts: list[str] = Field(default_factory=list, description="Concept names the item is about.")
    question: str = Field(description="The question stem with the concept written as <name>; no <image> tag.")
    images: list[str] = Field(default_factory=list, description="Image paths relative to the dataset root.")
    system: str | None = Field(default=None, description="System text shipped with the item (SLC files carry one).")
    group: str | None = Field(default=None, description="Sub-split used for breakdowns (e.g. single / multi).")

    @property
    def has_image(self) -> bool:
        return bool(self.images)


class ChoiceItem(_ItemBase):
    """A multiple-choice question; scored by parsing ONE option letter from the reply."""

    task: Literal["choice"] = "choice"
    options: dict[str, str] = Field(description="Letter -> option text, in display order.")
    answer: str = Field(description="The correct letter.")
    shuffled_from: str | None = Field(default=None, description="Id of the original item when options were shuffled.")

    def prompt(self) -> str:
        """The question with its options, one per line, as every mode receives it."""
        lines = [self.question] + [f"{k}. {v}" for k, v in self.options.items()]
        return "\n".join(lines)


class RecognitionItem(_ItemBase):
    """Is (are) the concept(s) in the image? ``expected`` is the yes/no answer."""

    task: Literal["recognition"] = "recognition"
    expected: bool
    present: dict[str, bool] = Field(default_factory=dict, description="Per-concept presence when the file has it.")


class OpenVQAItem(_ItemBase):
    """A free-text question scored against a reference answer (MC-LLaVA: character BLEU)."""

    task: Literal["open_vqa"] = "open_vqa"
    reference: str


class CaptionItem(_ItemBase):
    """Caption an image; ``present`` are the concepts in it, ``concepts`` the ones the model was told about."""

    task: Literal["caption"] = "caption"
    present: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list, description="Ground-truth captions when the dataset has them.")


Item = Annotated[Union[ChoiceItem, RecognitionItem, OpenVQAItem, CaptionItem], Field(discriminator="task")]


class LoadReport(BaseModel):
    """What a loader read, removed and could not find: printed by the CLI and kept beside the results."""

    benchmark: str
    source: str
    items: int = 0
    concepts: int = 0
    by_answer: dict[str, int] = Field(default_factory=dict)
    by_group: dict[str, int] = Field(default_factory=dict)
    duplicates_removed: int = 0
    notes: list[str] = Field(default_factory=list)
    root: str | None = Field(default=None, description="Dataset root the images were looked up under.")
    images_referenced: int = 0
    images_missing: list[str] = Field(default_factory=list)
    items_with_missing_images: int = 0

    def summary(self) -> str:
        parts = [f"{self.benchmark}: {self.items} items, {self.concepts} concepts"]
        if self.by_answer:
            parts.append("answers " + ", ".join(f"{k}={v}" for k, v in sorted(self.by_answer.items())))
        if self.duplicates_removed:
            parts.append(f"{self.duplicates_removed} duplicates removed")
        if self.root is None:
            parts.append("images not checked (no --root)")
        else:
            parts.append(f"{len(self.images_missing)} of {self.images_referenced} images missing under {self.root}")
        return "; ".join(parts)


class LoadedBenchmark(BaseModel):
    items: list[Item]
    report: LoadReport

    def available(self) -> list[Item]:
        """Items whose images are all present (all items when no root was given)."""
        missing = set(self.report.images_missing)
        return [it for it in self.items if not missing.intersection(it.images)]


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------
def normalize_image_path(path: str) -> str:
    """``./yollava-data/test/bo/0.png`` -> ``yollava-data/test/bo/0.png`` (the form of file-list.txt)."""
    p = path.replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p


def resolve_image(root: Path, rel: str) -> Path | None:
    """Find ``rel`` under ``root``; also accept a root that IS the first folder of ``rel`` (e.g. yollava-data/)."""
    root = Path(root)
    candidate = root / rel
    if candidate.is_file():
        return candidate
    parts = Path(rel).parts
    if len(parts) > 1 and root.name == parts[0]:
        candidate = root.joinpath(*parts[1:])
        if candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path} is not valid JSON: {exc}") from exc


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise BenchmarkFormatError(f"{path}: {what}")


def _strip_image_tag(text: str) -> str:
    return text.replace(IMAGE_TAG + "\n", "").replace(IMAGE_TAG, "").strip()


def _name_concept(question: str, concept: str) -> str:
    """Yo'LLaVA writes the concept as ``<sks>``, RAP's copy as bare ``sks``: write it as ``<concept>``."""
    q = question.replace("<sks>", f"<{concept}>")
    return re.sub(r"(?<![\w<])sks(?![\w>])", f"<{concept}>", q)


def split_options(text: str) -> tuple[str, dict[str, str]] | None:
    """Split ``"Q? A. x; B. y"`` (and the variants ``A: x``, ``A.x.``, ``?A.``) into stem and options."""
    marks = []
    want = "A"
    for m in _OPTION_MARK.finditer(text):
        if m.group(1) == want:
            marks.append(m)
            want = chr(ord(want) + 1)
    if len(marks) < 2:
        return None
    options = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        options[m.group(1)] = text[m.end() : end].strip().rstrip(";.,").strip()
    if any(not v for v in options.values()):
        return None
    return text[: marks[0].start()].strip(), options


def _finish(benchmark: str, source: Path, items: list, root: Path | None, **extra) -> LoadedBenchmark:
    """Fill the report's counts and the image check (one stat per distinct image)."""
    report = LoadReport(benchmark=benchmark, source=str(source), **extra)
    report.items = len(items)
    report.concepts = len({c for it in items for c in it.concepts})
    answers: Counter[str] = Counter()
    for it in items:
        if isinstance(it, ChoiceItem):
            answers[it.answer] += 1
        elif isinstance(it, RecognitionItem):
            answers["yes" if it.expected else "no"] += 1
    report.by_answer = dict(answers)
    report.by_group = dict(Counter(it.group for it in items if it.group))
    images = sorted({p for it in items for p in it.images})
    report.images_referenced = len(images)
    if root is not None:
        report.root = str(root)
        missing = [p for p in images if resolve_image(root, p) is None]
        report.images_missing = missing
        miss = set(missing)
        report.items_with_missing_images = sum(1 for it in items if miss.intersection(it.images))
    ids = Counter(it.id for it in items)
    dup_ids = [i for i, n in ids.items() if n > 1]
    if dup_ids:
        raise BenchmarkFormatError(f"{source}: item ids not unique, e.g. {dup_ids[:3]}")
    return LoadedBenchmark(items=items, report=report)


# ----------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------
def load_yollava_visual_qa(path: Path, root: Path | None = None, benchmark: str = "yollava-vqa") -> LoadedBenchmark:
    """Yo'LLaVA / RAP ``yollava-visual-qa.json``: concept -> image path -> {question, options{A,B}, correct_answer}."""
    path = Path(path)
    data = _read_json(path)
    _expect(isinstance(data, dict), path, "expected an object keyed by concept")
    items: list[ChoiceItem] = []
    for concept, per_image in data.items():
        _expect(isinstance(per_image, dict), path, f"concept {concept!r}: expected image path -> question")
        for image, q in per_image.items():
            _expect(isinstance(q, dict) and {"question", "options", "correct_answer"} <= set(q), path,
                    f"{concept}/{image}: needs question, options, correct_answer")
            rel = normalize_image_path(image)
            items.append(ChoiceItem(
                id=f"{concept}/{rel}", benchmark=benchmark, concepts=[concept],
                question=_name_concept(q["question"], concept), images=[rel],
                options=dict(q["options"]), answer=str(q["correct_answer"]).strip().upper(),
            ))
    return _finish(benchmark, path, items, root)


def load_yollava_text_qa(path: Path, root: Path | None = None, benchmark: str = "yollava-text-qa") -> LoadedBenchmark:
    """RAP's ``yollava-text-only-qa.json``: concept -> "0".. -> {question, option (singular!), correct_answer}."""
    path = Path(path)
    data = _read_json(path)
    _expect(isinstance(data, dict), path, "expected an object keyed by concept")
    items: list[ChoiceItem] = []
    for concept, per_q in data.items():
        _expect(isinstance(per_q, dict), path, f"concept {concept!r}: expected index -> question")
        for idx, q in per_q.items():
            options = q.get("option", q.get("options"))  # RAP's file says `option`; accept the plural too
            _expect(isinstance(options, dict) and "question" in q and "correct_answer" in q, path,
                    f"{concept}/{idx}: needs question, option, correct_answer")
            items.append(ChoiceItem(
                id=f"{concept}/{idx}", benchmark=benchmark, concepts=[concept],
                question=_name_concept(q["question"], concept), options=dict(options),
                answer=str(q["correct_answer"]).strip().upper(),
            ))
    return _finish(benchmark, path, items, root)


def load_rap_recognition(path: Path, root: Path | None = None, benchmark: str = "rap-recognition") -> LoadedBenchmark:
    """RAP's ``recognition_test.json``, with its duplicated-positive quirk removed.

    The file lists each positive (image, concept) pair twice: once as type "positive" and once more as type
    "negative" with ``correct_answer: true``. Scoring the file as is counts positives twice and puts 333
    "yes" answers among the negatives. We keep one row per (image, concept), take the truth from
    ``correct_answer``, and say how many rows were dropped.
    """
    path = Path(path)
    data = _read_json(path)
    _expect(isinstance(data, list), path, "expected a list of {image, question, concept, type, correct_answer}")
    seen: dict[tuple[str, str], RecognitionItem] = {}
    first_type: dict[tuple[str, str], str | None] = {}
    quirk = conflicting = exact = 0
    for row in data:
        _expect(isinstance(row, dict) and {"image", "concept", "correct_answer"} <= set(row), path,
                f"row without image/concept/correct_answer: {str(row)[:120]}")
        rel = normalize_image_path(row["image"])
        concept = row["concept"]
        expected = bool(row["correct_answer"])
        key = (rel, concept)
        if key in seen:
            if seen[key].expected != expected:
                conflicting += 1
            elif expected and row.get("type") != first_type[key]:
                quirk += 1  # the positive twin listed as "negative" (either order)
            else:
                exact += 1
            continue
        first_type[key] = row.get("type")
        seen[key] = RecognitionItem(
            id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
            question=_strip_image_tag(row.get("question", f"Is <{concept}> in this image?")),
            images=[rel], expected=expected, present={concept: expected},
            group="positive" if expected else "negative",
        )
    _expect(conflicting == 0, path, f"{conflicting} (image, concept) pairs appear with both answers")
    items = list(seen.values())
    removed = len(data) - len(items)
    notes = []
    if removed:
        notes.append(
            f"{removed} duplicate rows removed ({quirk} positives repeated as type 'negative' with "
            f"correct_answer true, {exact} other exact repeats); {len(data)} rows -> {len(items)} pairs"
        )
    return _finish(benchmark, path, items, root, duplicates_removed=removed, notes=notes)


def load_sharegpt_eval(path: Path, root: Path | None = None, benchmark: str | None = None) -> LoadedBenchmark:
    """The SLC authors' sharegpt-style eval files (``yollava_eval__*.json``, ``mc_eval__*.json``).

    Shape: concept (or scenario ``A_B``) -> list of {conversations [system, human, assistant], images?, gt?,
    is_positive?, concept_to_check?, present_situations?}. Rows with ``is_positive`` are recognition items
    (MC-LLaVA multi-concept recognition); rows whose ``gt`` is a letter and whose question lists options are
    multiple choice; any other ``gt`` is an open-VQA reference. Exact repeats (same image, same question,
    same answer) are dropped and counted.
    """
    path = Path(path)
    benchmark = benchmark or path.stem
    data = _read_json(path)
    _expect(isinstance(data, dict), path, "expected an object keyed by concept or scenario")
    items: list = []
    seen: set[tuple] = set()
    typos: Counter[str] = Counter()
    removed = 0
    for key, rows in data.items():
        _expect(isinstance(rows, list), path, f"{key!r}: expected a list of conversations")
        for i, row in enumerate(rows):
            conv = row.get("conversations") if isinstance(row, dict) else None
            _expect(isinstance(conv, list) and conv, path, f"{key}[{i}]: no conversations")
            system = next((m["value"] for m in conv if m.get("from") == "system"), None)
            human = next((m["value"] for m in conv if m.get("from") in ("human", "user")), None)
            _expect(human is not None, path, f"{key}[{i}]: no human turn")
            images = [normalize_image_path(p) for p in row.get("images", [])]
            text = _strip_image_tag(human)
            stem_text = re.split(r"\nRULE:", text)[0].strip()
            group = _sharegpt_group(images)
            base = dict(id=f"{key}/{i}", benchmark=benchmark, images=images, system=system, group=group)
            if "is_positive" in row:
                checked = list(row.get("concept_to_check") or [])
                present = {k: bool(v) for k, v in (row.get("present_situations") or {}).items()}
                sig = ("rec", tuple(images), tuple(checked), bool(row["is_positive"]))
                item = RecognitionItem(concepts=checked, question=stem_text, expected=bool(row["is_positive"]),
                                       present=present, **base)
            else:
                _expect("gt" in row, path, f"{key}[{i}]: neither gt nor is_positive")
                gt = str(row["gt"]).strip()
                known = key.split("_")
                named = re.findall(r"<([^<>\s]+)>", stem_text)
                unknown = [n for n in named if n not in known]
                if unknown:
                    typos.update(unknown)
                concepts = [n for n in named if n in known] or known
                split = split_options(stem_text)
                if split is not None and re.fullmatch(r"[A-H]", gt.upper()):
                    stem, options = split
                    _expect(gt.upper() in options, path, f"{key}[{i}]: gt {gt!r} not among options {list(options)}")
                    item = ChoiceItem(concepts=_dedup(concepts), question=stem, options=options,
                                      answer=gt.upper(), **base)
                    sig = ("choice", tuple(images), stem, tuple(options.items()), gt.upper())
                else:
                    item = OpenVQAItem(concepts=_dedup(concepts), question=stem_text, reference=gt, **base)
                    sig = ("open", tuple(images), stem_text, gt)
            if sig in seen:
                removed += 1
                continue
            seen.add(sig)
            items.append(item)
    notes = [f"{removed} exact repeats removed (same image, question and answer)"] if removed else []
    if typos:
        notes.append(f"questions name concepts not in their key (typos in the file, the key's concepts are used): "
                     f"{dict(typos)}")
    return _finish(benchmark, path, items, root, duplicates_removed=removed, notes=notes)


def _dedup(xs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def _sharegpt_group(images: list[str]) -> str:
    if not images:
        return "text"
    p = images[0]
    if "/multi/" in p:
        return "multi"
    if "/concept/" in p or p.startswith("yollava-data/"):
        return "single"
    return "image"


def load_myvlm_captions(root: Path, benchmark: str = "myvlm-captions", negatives_per_concept: int = 5) -> LoadedBenchmark:
    """MyVLM layout: ``<root>/<concept>/captions.json`` = {image file (relative to the concept folder): [captions]}.

    One positive item per image (the concept is present and named to the model), plus, for precision to mean
    something, ``negatives_per_concept`` images of other concepts captioned with this concept named (a caption
    that names it there counts against precision). Negatives are chosen deterministically (sorted order).
    """
    root = Path(root)
    files = sorted(root.glob("*/captions.json"))
    _expect(bool(files), root, "no <concept>/captions.json found (MyVLM layout)")
    positives: list[CaptionItem] = []
    by_concept: dict[str, list[str]] = {}
    for f in files:
        concept = f.parent.name
        data = _read_json(f)
        _expect(isinstance(data, dict), f, "expected image -> list of captions")
        for image, caps in data.items():
            rel = f"{concept}/{normalize_image_path(image)}"
            caps = [caps] if isinstance(caps, str) else list(caps)
            positives.append(CaptionItem(id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
                                         question="Describe this image.", images=[rel], present=[concept],
                                         references=caps, group="positive"))
            by_concept.setdefault(concept, []).append(rel)
    negatives: list[CaptionItem] = []
    for concept in sorted(by_concept):
        others = [p for c in sorted(by_concept) if c != concept for p in by_concept[c]]
        step = max(1, len(others) // max(1, negatives_per_concept)) if others else 1
        for rel in others[::step][:negatives_per_concept]:
            negatives.append(CaptionItem(id=f"{rel}|{concept}", benchmark=benchmark, concepts=[concept],
                                         question="Describe this image.", images=[rel], present=[],
                                         group="negative"))
    return _finish(benchmark, root, positives + negatives, root)


def load_mcllava_native(root: Path, task: Literal["vqa", "caption"], benchmark: str | None = None) -> LoadedBenchmark:
    """MC-LLaVA's own layout (open VQA with free-text answers, and captions), which SLC's copies do not carry.

    ``<root>/<case>/concept/test/<concept>/vqa.json`` = {image: {Human, AI}};
    ``<root>/<case>/multi/<A_B..>/vqa.json`` = {image: [{Human, AI}, ...]};
    ``<root>/<case>/multi/<A_B..>/position.json`` = {image: {concept: position or null}} (captions: the
    non-null concepts are present). Image keys are taken relative to the root, else to the json's folder.
    """
    root = Path(root)
    benchmark = benchmark or f"mc-llava-{task}"
    items: list = []

    def rel_image(img: str, folder: Path) -> str:
        p = normalize_image_path(img)
        if (root / p).is_file() or not (folder / Path(p).name).is_file():
            return p
        return (folder / Path(p).name).relative_to(root).as_posix()

    if task == "vqa":
        files = sorted(root.glob("*/concept/test/*/vqa.json")) + sorted(root.glob("*/multi/*/vqa.json"))
        _expect(bool(files), root, "no vqa.json found (MC-LLaVA layout)")
        for f in files:
            is_multi = f.parent.parent.name == "multi"
            concepts = f.parent.name.split("_") if is_multi else [f.parent.name]
            for img, qas in _read_json(f).items():
                for j, qa in enumerate(qas if isinstance(qas, list) else [qas]):
                    rel = rel_image(img, f.parent)
                    items.append(OpenVQAItem(
                        id=f"{f.parent.relative_to(root).as_posix()}/{Path(img).name}/{j}", benchmark=benchmark,
                        concepts=re.findall(r"<([^<>\s]+)>", qa["Human"]) or concepts,
                        question=_strip_image_tag(qa["Human"]), images=[rel], reference=str(qa["AI"]),
                        group="multi" if is_multi else "single"))
    else:
        files = sorted(root.glob("*/multi/*/position.json"))
        _expect(bool(files), root, "no multi/*/position.json found (MC-LLaVA layout)")
        for f in files:
            concepts = f.parent.name.split("_")
            for img, positions in _read_json(f).items():
                rel = rel_image(img, f.parent)
                present = [k for k, v in positions.items() if v is not None]
                items.append(CaptionItem(id=f"{rel}", benchmark=benchmark, concepts=concepts,
                                         question="Describe this image.", images=[rel], present=present,
                                         group="multi"))
    return _finish(benchmark, root, items, root)


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
        _spec("myvlm-captions", "MyVLM captioning (<root>/<concept>/captions.json)", None,
              lambda p, r=None: load_myvlm_captions(r or p)),
        _spec("mc-llava-vqa", "MC-LLaVA open VQA, native layout (char-BLEU)", None,
              lambda p, r=None: load_mcllava_native(r or p, "vqa")),
        _spec("mc-llava-captions", "MC-LLaVA caption recall, native layout", None,
              lambda p, r=None: load_mcllava_native(r or p, "caption")),
    ]
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
