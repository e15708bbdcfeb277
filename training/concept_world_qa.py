"""A personalized QA benchmark of held-out concept-world concepts, written in the field's own formats.

Why: the published benchmarks (Yo'LLaVA, RAP, MC-LLaVA) need real photos we cannot ship and have no
per-photo truth of *which* concepts are present and where; the concept world renders photos with exact
truth. :func:`generate_qa` writes one dataset folder that the existing loaders and ``slc eval`` read as
they read the published files, and a manifest with the truth no model sees (``slc data qa``).

The concepts are held out from the shipped small VLM: the identity benchmark's split 0 (:func:`make_split`),
its ``validation`` concepts for tuning thresholds, its ``test`` concepts for the frozen test; the shipped
bank trained only on concepts no split holds out. Photos reuse the identity benchmark's renderers:
registration photos (:func:`registration_photos`), test photos by kind (:func:`concept_items`: positives
with free leaves moved, one-attribute CaT hard negatives, look-alike twins, other-category negatives), and
:func:`slc.cat.render.render_with_info` (with companions) for photos of two objects.

Layout of the folder (``--root`` of ``slc eval``)::

    yollava-data/train/<c>/{0,1,2}.png        registration photos (Yo'LLaVA layout; `slc concept import yollava`)
    yollava-data/test/<c>/<i>.png             photos where <c> is present (recognition positives, visual QA)
    yollava-data/test/<c>/negative_example/   recognition negatives of <c> (no registered concept in them)
    rap/recognition_test.json                 rap-recognition: balanced positives / negatives per concept
    yollava/yollava-visual-qa.json            yollava-vqa: questions about <c> in a photo with look-alikes
    rap/yollava-text-only-qa.json             yollava-text-qa: shape, colour, pattern, accessory of <c>
    two_concept/concept/train/<c>/*.png       the same registration photos (MC-LLaVA native layout)
    two_concept/multi/<a>_<b>/choice.json     mc-llava-choice: which of <a>, <b> is here; is <a> left of <b>
    two_concept/multi/<a>_<b>/position.json   mc-llava-captions: each scenario concept's box or null
    presence.json                             test photo -> {every registered concept: truly in it?}
    manifest.json                             version, seed, split, counts, the command, every item's truth

No description files are written: the Yo'LLaVA and MC-LLaVA layouts carry photos only, so a registered
concept's identity is what the pipeline reads off its photos. The correct option letter of every
multiple-choice question is dealt from a shuffled deck per file and option count, so the file's own order
is balanced (A is right 1/k of the time) before the harness shuffles anything. Same options, same bytes.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, Field

from slc.cat import world as W
from slc.cat.render import RenderInfo, render_with_info
from slc.cat.tree import ConceptTree
from slc.cat.world import WorldConcept, twin_of
from slc.training.identity_data import EvalItem, concept_items, make_split, registration_photos

GENERATOR = "slc.training.concept_world_qa"
VERSION = 1
DEFAULT_CONCEPTS = 28
CASE = "two_concept"  # MC-LLaVA's case folder of two-concept scenarios

#: Paths under the folder that the generator owns (removed before it writes again).
OWNED = ("yollava-data", "rap", "yollava", CASE, "presence.json", "manifest.json")
#: File -> the benchmark name ``slc eval`` knows it by.
FILES: dict[str, str] = {
    "rap/recognition_test.json": "rap-recognition",
    "yollava/yollava-visual-qa.json": "yollava-vqa",
    "rap/yollava-text-only-qa.json": "yollava-text-qa",
    f"{CASE}/multi/*/choice.json": "mc-llava-choice",
    f"{CASE}/multi/*/position.json": "mc-llava-captions",
}
REC_QUESTION = "<image>\nIs <{c}> in this image? Answer with a single word or phrase."
NEGATIVE_KINDS = ("one-attribute", "twin", "other-category", "another-concept")
POSITIVES = 4

_ACCESSORY_COLOUR_WORDS = {"charcoal": "black", "maroon": "dark red", "navy": "dark blue", "forest": "dark green"}
ACCESSORY_WORDS = {"none": "nothing", "hat": "a hat", "bowtie": "a bowtie", "antenna": "an antenna"}
PATTERN_WORDS = {"solid": "no pattern (plain)", "striped": "stripes", "dotted": "dots", "checkered": "checks"}
_SIDES = ("top", "right", "bottom", "left")
_SIDE_CELLS = ("left", "right", "top left", "top right", "bottom left", "bottom right")


class QAConfig(BaseModel):
    """What ``slc data qa`` generates (every field is in the manifest and in the command that regenerates it)."""

    split: Literal["test", "validation", "train"] = Field(default="test", description=(
        "test: the frozen held-out concepts; validation: held-out concepts for tuning; train: concepts the shipped "
        "models trained on (for training a model on the benchmark's question forms, e.g. the large role)"))
    seed: int = 0
    size: int = Field(default=64, ge=32)
    concepts: int = Field(default=DEFAULT_CONCEPTS, ge=2, description="The first N concepts of the split.")

    def command(self) -> str:
        return (f"slc data qa --out <this folder> --split {self.split} --seed {self.seed} --size {self.size} "
                f"--concepts {self.concepts}")


class QAResult(BaseModel):
    out: str
    manifest: dict[str, Any]


# ------------------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------------------


class _Deck:
    """Balanced draws of one file: the correct letter of each question (a shuffled deck per option count) and
    the truth of two-way questions (left or right...), so neither the file's order nor its truths lean."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.decks: dict[object, list[int]] = {}

    def deal(self, key: object, k: int) -> int:
        deck = self.decks.setdefault(key, [])
        if not deck:
            deck.extend(range(k))
            self.rng.shuffle(deck)
        return deck.pop()

    def coin(self, key: str) -> bool:
        return self.deal(key, 2) == 0

    def options(self, correct: str, wrong: Sequence[str]) -> tuple[dict[str, str], str]:
        k = len(wrong) + 1
        pos = self.deal(("letters", k), k)
        texts = list(wrong)
        self.rng.shuffle(texts)
        texts.insert(pos, correct)
        letters = "ABCDEFGH"[:k]
        return dict(zip(letters, texts)), letters[pos]


def _others(rng: random.Random, pool: Sequence[str], exclude: Sequence[str], n: int) -> list[str]:
    return rng.sample([p for p in pool if p not in exclude], n)


def _object(what: str | None, tree: ConceptTree, center: Sequence[float], bbox: Sequence[int], location: str, *,
            role: str, detail: str = "") -> dict[str, Any]:
    """One object of a photo, as the manifest records it: which registered concept it is (None: none)."""
    return {"concept": what, "role": role, "detail": detail, "category": tree.root, "attributes": tree.identity(),
            "center": [round(center[0], 2), round(center[1], 2)], "bbox": list(bbox), "location": location}


def _objects(info: RenderInfo, main: tuple[str | None, ConceptTree, str, str],
             companions: Sequence[tuple[str | None, ConceptTree, str, str]] = ()) -> list[dict[str, Any]]:
    out = [_object(main[0], main[1], info.center, info.bbox, info.location_absolute, role=main[2], detail=main[3])]
    for c in info.companions:
        what, tree, role, detail = companions[c.index]
        out.append(_object(what, tree, c.center, c.bbox, c.location_absolute, role=role, detail=detail))
    return out


class _Writer:
    """Images, presence and per-image truth, written as they are made."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.presence: dict[str, dict[str, bool]] = {}
        self.images: dict[str, dict[str, Any]] = {}

    def save(self, rel: str, image: Image.Image, objects: list[dict[str, Any]] | None = None) -> str:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
        if objects is not None:
            self.images[rel] = {"objects": objects}
        return rel

    def present(self, rel: str, concept: str, present: bool) -> None:
        seen = self.presence.setdefault(rel, {})
        if seen.get(concept, present) != present:
            raise AssertionError(f"{rel}: {concept} both present and absent")  # pragma: no cover - a generator bug
        seen[concept] = present

    def full_presence(self, names: Sequence[str]) -> dict[str, dict[str, bool]]:
        """Every test photo -> {every registered concept: drawn in it as itself?}. A photo holds only the objects
        the generator drew, so the truth is known for all of them (a look-alike is not its concept)."""
        out = {}
        for rel, asked in self.presence.items():
            drawn = {o["concept"] for o in self.images[rel]["objects"] if o["concept"]}
            full = {n: n in drawn for n in names}
            if any(full[c] != v for c, v in asked.items()):
                raise AssertionError(f"{rel}: presence disagrees with the objects drawn")  # pragma: no cover
            out[rel] = full
        return out


def _two_objects(first: ConceptTree, second: ConceptTree, first_is_main: bool, free: dict[str, str], size: int,
                 rng: random.Random, ok: Callable[[Places], bool],
                 cells: Sequence[str] = _SIDE_CELLS) -> tuple[Image.Image, RenderInfo]:
    """A photo of two objects, the main (bigger) one and a companion beside it, re-drawn (seeded) until ``ok``
    holds of where ``first`` and ``second`` are."""
    main, companion = (first, second) if first_is_main else (second, first)
    for _ in range(400):
        image, info = render_with_info(main, {**free, "position": rng.choice(cells)}, size=size,
                                       seed=rng.getrandbits(31), companions=[companion])
        if len(info.companions) == 1 and ok(_places(info, first_is_main)):
            return image, info
    raise RuntimeError("no placement of two objects satisfied the question's condition")  # pragma: no cover


#: Where two objects of a photo are: (centre, 3x3 location name) of the first, then of the second.
Places = tuple[tuple[tuple[float, float], str], tuple[tuple[float, float], str]]


def _places(info: RenderInfo, first_is_main: bool) -> Places:
    comp = info.companions[0]
    main, comp = (info.center, info.location_absolute), (comp.center, comp.location_absolute)
    return (main, comp) if first_is_main else (comp, main)


def _before(axis: int, size: int, first: bool) -> Callable[[Places], bool]:
    """The first object's centre is ``first`` (True: left of / above) the second's along ``axis`` (0 = x,
    1 = y), by at least a fifth of the photo."""
    def ok(p: Places) -> bool:
        d = p[1][0][axis] - p[0][0][axis]
        return abs(d) >= 0.2 * size and (d > 0) == first

    return ok


def _apart(p: Places) -> bool:
    return p[0][1] != p[1][1]


# ------------------------------------------------------------------------------------------------------------
# Per concept: its photos by kind (the identity benchmark's renderer), retried until every kind is there
# ------------------------------------------------------------------------------------------------------------


def _concept_photos(c: WorldConcept, config: QAConfig) -> list[EvalItem]:
    for attempt in range(20):
        rng = random.Random(f"{GENERATOR}:{config.seed}:{config.split}:{c.name}:{attempt}")
        items = concept_items(c, "in-distribution", rng, size=config.size, positives=POSITIVES)
        kinds = Counter(it.kind for it in items)
        if kinds["positive"] >= POSITIVES and all(kinds[k] for k in ("one-attribute", "twin", "other-category")):
            return items
    raise RuntimeError(f"{c.name}: no photo of some negative kind in 20 draws")  # pragma: no cover


def _lookalikes(items: Sequence[EvalItem]) -> list[EvalItem]:
    return [it for it in items if it.kind in ("twin", "one-attribute")]


def _lookalike_role(it: EvalItem) -> str:
    return f"look-alike of {it.concept} ({it.kind}: {it.detail})"


# ------------------------------------------------------------------------------------------------------------
# The files
# ------------------------------------------------------------------------------------------------------------


class _Build:
    """What every file of one generation shares: the config, the concepts and their photos, the writer, the
    manifest's items, and the next free photo number of each concept's test folder."""

    def __init__(self, out: Path, config: QAConfig, concepts: Sequence[WorldConcept]) -> None:
        self.config, self.concepts = config, list(concepts)
        self.w = _Writer(out)
        self.items: list[dict[str, Any]] = []
        self.photos = {c.name: _concept_photos(c, config) for c in concepts}
        self.scenarios = [(concepts[i], concepts[i + 1]) for i in range(0, len(concepts) - 1, 2)]
        self.scenario_of = {c.name: f"{a.name}_{b.name}" for a, b in self.scenarios for c in (a, b)}
        self._next = {c.name: 0 for c in concepts}

    def rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(map(str, (GENERATOR, self.config.seed, self.config.split, *parts))))

    def test_path(self, name: str) -> str:
        self._next[name] += 1
        return f"yollava-data/test/{name}/{self._next[name] - 1}.png"

    def write(self, rel: str, data: Any) -> None:
        _write_json(self.w.out / rel, data)


def split_concepts(split: str) -> list[WorldConcept]:
    """The concepts of a split: split 0's held-out test or validation concepts, or the training concepts (those no
    identity-benchmark split holds out: :func:`slc.training.identity_benchmark.training_split`)."""
    if split == "train":
        from slc.training.identity_benchmark import training_split

        return training_split([make_split(0), make_split(1)]).train
    held = make_split(0)
    return held.test if split == "test" else held.validation


def generate_qa(out: Path, config: QAConfig | None = None) -> QAResult:
    """Write the benchmark folder (see the module docstring); same config -> byte-identical files."""
    config = config or QAConfig()
    out = Path(out)
    pool = split_concepts(config.split)
    if config.concepts > len(pool):
        raise ValueError(f"the {config.split} split has {len(pool)} concepts; asked for {config.concepts}")
    _prepare(out)
    b = _Build(out, config, pool[:config.concepts])
    for c in b.concepts:  # registration photos, in both layouts
        for k, im in enumerate(registration_photos(c, size=config.size, seed=config.seed)):
            b.w.save(f"yollava-data/train/{c.name}/{k}.png", im)
            if c.name in b.scenario_of:
                b.w.save(f"{CASE}/concept/train/{c.name}/{k}.png", im)
    _recognition(b)
    _visual_qa(b)
    _text_qa(b)
    _two_concepts(b)
    b.write("presence.json", b.w.full_presence([c.name for c in b.concepts]))
    manifest = _manifest(config, b)
    b.write("manifest.json", manifest)
    return QAResult(out=str(out), manifest=manifest)


def _recognition(b: _Build) -> None:
    """RAP's recognition_test.json: per concept its positives, and one negative of each kind."""
    rng = b.rng()
    names = [c.name for c in b.concepts]
    positives: dict[str, list[str]] = {}
    for c in b.concepts:
        positives[c.name] = []
        for it in [i for i in b.photos[c.name] if i.kind == "positive"][:POSITIVES]:
            rel = b.w.save(b.test_path(c.name), it.image, _objects(it.info, (c.name, it.tree, "the concept", "")))
            b.w.present(rel, c.name, True)
            positives[c.name].append(rel)
    rows: list[dict[str, Any]] = []
    for c in b.concepts:
        for rel in positives[c.name]:
            rows.append({"image": rel, "question": REC_QUESTION.format(c=c.name), "concept": c.name,
                         "type": "positive", "correct_answer": True})
            b.items.append({"file": "rap/recognition_test.json", "id": f"{rel}|{c.name}", "kind": "positive",
                            "concepts": [c.name], "image": rel, "answer": "yes"})
        negs = []
        for n, kind in enumerate(("one-attribute", "twin", "other-category")):
            it = next(i for i in b.photos[c.name] if i.kind == kind)
            rel = f"yollava-data/test/{c.name}/negative_example/{n}.png"
            b.w.save(rel, it.image, _objects(it.info, (None, it.tree, f"{kind} negative of {c.name}", it.detail)))
            negs.append((rel, kind, it.detail))
        other = rng.choice([n for n in names if n != c.name])
        negs.append((rng.choice(positives[other]), "another-concept", other))
        for rel, kind, detail in negs:
            b.w.present(rel, c.name, False)
            rows.append({"image": rel, "question": REC_QUESTION.format(c=c.name), "concept": c.name,
                         "type": "negative", "correct_answer": False})
            b.items.append({"file": "rap/recognition_test.json", "id": f"{rel}|{c.name}", "kind": kind,
                            "detail": detail, "concepts": [c.name], "image": rel, "answer": "no"})
    b.write("rap/recognition_test.json", rows)


def _visual_qa(b: _Build) -> None:
    """Yo'LLaVA's yollava-visual-qa.json: questions about <c> in a photo where a look-alike stands beside it."""
    deck = _Deck(b.rng("vqa-letters"))
    vqa: dict[str, dict[str, Any]] = {}
    size = b.config.size
    for c in b.concepts:
        crng = b.rng(c.name, "vqa")
        its = b.photos[c.name]
        free = crng.choice([i for i in its if i.kind == "positive"]).tree.free()
        questions = vqa.setdefault(c.name, {})

        def photo(lookalike: ConceptTree, role: str, ok: Callable[[Places], bool], cells: Sequence[str] = _SIDE_CELLS,
                  c: WorldConcept = c, crng: random.Random = crng, free: dict = free) -> tuple[str, Places]:
            """<c> and one look-alike; <c> is the big (main) object or the small one, half the time each."""
            main_is_c = crng.random() < 0.5
            image, info = _two_objects(c.tree, lookalike, main_is_c, free, size, crng, ok, cells)
            me, other = (c.name, c.tree, "the concept", ""), (None, lookalike, role, "")
            rel = b.w.save(b.test_path(c.name), image, _objects(info, *((me, [other]) if main_is_c else (other, [me]))))
            b.w.present(rel, c.name, True)
            return rel, _places(info, main_is_c)

        def add(rel: str, kind: str, question: str, correct: str, wrong: Sequence[str], truth: str,
                c: WorldConcept = c, questions: dict = questions) -> None:
            options, letter = deck.options(correct, wrong)
            questions[f"./{rel}"] = {"question": question, "options": options, "correct_answer": letter}
            b.items.append({"file": "yollava/yollava-visual-qa.json", "id": f"{c.name}/{rel}", "kind": kind,
                            "concepts": [c.name], "image": rel, "answer": letter, "truth": truth})

        look = crng.choice(_lookalikes(its))
        rel, ((_, mine), (_, theirs)) = photo(look.tree, _lookalike_role(look), _apart, W.POSITIONS)
        add(rel, "position", "Where is <sks> in this photo?", mine,
            [theirs, *_others(crng, W.POSITIONS, [mine, theirs], 2)], mine)

        look = crng.choice(_lookalikes(its))
        left = deck.coin("left-right")
        rel, _ = photo(look.tree, _lookalike_role(look), _before(0, size, left))
        side, other_side = ("on the left", "on the right") if left else ("on the right", "on the left")
        add(rel, "left-right", "Is <sks> the object on the left or on the right?", side, [other_side], side)

        acc, inst = c.tree.identity()["accessory"], c.tree.instance()
        if acc != "none":  # the look-alike's accessory has another colour: the answer needs to know which is <c>
            twin = twin_of(c.tree, crng, "accessory_colour")
            rel, _ = photo(twin, f"look-alike of {c.name} (twin: accessory_colour)", _apart)
            mine = _ACCESSORY_COLOUR_WORDS[inst["accessory_colour"]]
            add(rel, "accessory-colour", f"What colour is the {acc} of <sks>?", mine,
                [v for v in _ACCESSORY_COLOUR_WORDS.values() if v != mine], inst["accessory_colour"])
        elif inst["mark"] != "none":
            twin = twin_of(c.tree, crng, "mark")
            rel, _ = photo(twin, f"look-alike of {c.name} (twin: mark)", _apart)
            add(rel, "mark-side", "On which side of its body does <sks> have a pale spot?", inst["mark"],
                [s for s in _SIDES if s != inst["mark"]], inst["mark"])
        else:
            look = crng.choice(_lookalikes(its))
            above = deck.coin("above-below")
            rel, _ = photo(look.tree, _lookalike_role(look), _before(1, size, above))
            side, other_side = ("above", "below") if above else ("below", "above")
            add(rel, "above-below", "Is <sks> above or below the other object?", side, [other_side], side)
    b.write("yollava/yollava-visual-qa.json", vqa)


def _text_qa(b: _Build) -> None:
    """RAP's yollava-text-only-qa.json (singular "option"): the concept's category and vocabulary attributes."""
    deck = _Deck(b.rng("text-letters"))
    text: dict[str, dict[str, Any]] = {}
    for c in b.concepts:
        crng = b.rng(c.name, "text")
        ident = c.tree.identity()
        asks = [
            ("shape", "What shape is sks?", c.tree.root, list(W.SHAPES)),
            ("colour", "What colour is sks?", ident["colour"], list(W.PALETTE)),
            ("pattern", "What pattern does sks have?", PATTERN_WORDS[ident["pattern"]], [*PATTERN_WORDS.values()]),
            ("accessory", "What is sks wearing?", ACCESSORY_WORDS[ident["accessory"]], [*ACCESSORY_WORDS.values()]),
        ]
        text[c.name] = {}
        for j, (kind, question, correct, vocab) in enumerate(asks):
            options, letter = deck.options(correct, _others(crng, vocab, [correct], 3))
            text[c.name][str(j)] = {"question": question, "option": options, "correct_answer": letter}
            b.items.append({"file": "rap/yollava-text-only-qa.json", "id": f"{c.name}/{j}", "kind": kind,
                            "concepts": [c.name], "answer": letter, "truth": correct})
    b.write("rap/yollava-text-only-qa.json", text)


def _two_concepts(b: _Build) -> None:
    """MC-LLaVA's native layout, one scenario per pair of concepts: multi/<a>_<b>/choice.json (which of the
    two is here, from photos of both, one, or only look-alikes; is <a> left of <b>) and position.json."""
    deck = _Deck(b.rng("multi-letters"))
    size = b.config.size
    for a, c in b.scenarios:
        srng = b.rng(f"{a.name}_{c.name}", "multi")
        folder = f"{CASE}/multi/{a.name}_{c.name}"
        choice: dict[str, list[dict[str, str]]] = {}
        position: dict[str, dict[str, list[int] | None]] = {}
        free = srng.choice([i for i in b.photos[a.name] if i.kind == "positive"]).tree.free()
        look_a, look_c = srng.choice(_lookalikes(b.photos[a.name])), srng.choice(_lookalikes(b.photos[c.name]))
        is_a, is_c = (a.name, a.tree, "the concept", ""), (c.name, c.tree, "the concept", "")
        not_a = (None, look_a.tree, _lookalike_role(look_a), "")
        not_c = (None, look_c.tree, _lookalike_role(look_c), "")
        cases = [("both", is_a, is_c), ("only-a", is_a, not_c), ("only-b", not_a, is_c), ("neither", not_a, not_c)]
        which = f"Which of <{a.name}> and <{c.name}> are in this photo?"
        answers = {"both": f"both <{a.name}> and <{c.name}>", "only-a": f"only <{a.name}>",
                   "only-b": f"only <{c.name}>", "neither": "neither of them"}
        for n, (kind, first, second) in enumerate(cases):
            first_is_main = srng.random() < 0.5  # who is the big one
            ok = _before(0, size, deck.coin("left-of")) if kind == "both" else _apart
            image, info = _two_objects(first[1], second[1], first_is_main, free, size, srng, ok)
            main, comp = (first, second) if first_is_main else (second, first)
            rel = b.w.save(f"{folder}/{n}.png", image, _objects(info, main, [comp]))
            objs = b.w.images[rel]["objects"]
            for name in (a.name, c.name):
                b.w.present(rel, name, any(o["concept"] == name for o in objs))
            position[rel] = {name: next((o["bbox"] for o in objs if o["concept"] == name), None)
                             for name in (a.name, c.name)}
            qas: list[tuple[str, str, str, list[str], str]] = [
                (kind, which, answers[kind], [v for k, v in answers.items() if k != kind], answers[kind])]
            if kind == "both":
                xa = next(o["center"][0] for o in objs if o["concept"] == a.name)
                xc = next(o["center"][0] for o in objs if o["concept"] == c.name)
                truth = "Yes" if xa < xc else "No"
                qas.append(("left-of", f"Is <{a.name}> to the left of <{c.name}>?", truth,
                            ["No" if truth == "Yes" else "Yes"], truth))
            choice[rel] = []
            for j, (qkind, question, correct, wrong, truth) in enumerate(qas):
                options, letter = deck.options(correct, wrong)
                inline = " ".join(f"{k}. {v}" for k, v in options.items())
                choice[rel].append({"Human": f"<image>\n{question} {inline}", "AI": letter})
                b.items.append({"file": f"{folder}/choice.json", "id": f"{folder}/{n}.png/{j}", "kind": qkind,
                                "concepts": [a.name, c.name], "image": rel, "answer": letter, "truth": truth})
        b.write(f"{folder}/choice.json", choice)
        b.write(f"{folder}/position.json", position)
        for rel, boxes in position.items():
            b.items.append({"file": f"{folder}/position.json", "id": rel, "kind": "caption",
                            "concepts": [a.name, c.name], "image": rel,
                            "answer": sorted(k for k, v in boxes.items() if v is not None)})


def _manifest(config: QAConfig, b: _Build) -> dict[str, Any]:
    items = b.items
    files: dict[str, dict[str, Any]] = {}
    for pattern, benchmark in FILES.items():
        mine = [it for it in items if Path(it["file"]).match(pattern)]
        files[pattern] = {"benchmark": benchmark, "items": len(mine),
                          "by_kind": dict(sorted(Counter(it["kind"] for it in mine).items())),
                          "by_answer": dict(sorted(Counter(_answer_key(it["answer"]) for it in mine).items()))}
    return {
        "generator": GENERATOR, "version": VERSION, "seed": config.seed, "split": config.split, "size": config.size,
        "command": config.command(),
        "source": (f"held-out concepts of the identity benchmark's split 0 (slc.training.identity_data.make_split(0)."
                   f"{config.split}, the first {config.concepts}); the shipped small VLM never trained on them"
                   if config.split != "train" else f"the first {config.concepts} TRAINING concepts of the identity "
                   "benchmark (slc.training.identity_benchmark.training_split): for training, never for scores"),
        "descriptions": ("none written: the Yo'LLaVA and MC-LLaVA layouts carry photos only, so a registered concept's "
                         "identity is what the pipeline reads off its photos. The truth below (category, vocabulary "
                         "attributes, instance leaves) is for scoring only, never shown to a model"),
        "presence": ("presence.json: every test photo -> {every registered concept: truly in it?} (for counting wrong "
                     "presence claims about any concept); where each object is: images below"),
        "evaluate": {name: f"slc eval {name} --root <this folder>" for name in dict.fromkeys(FILES.values())},
        "concepts": [{"name": c.name, "scenario": b.scenario_of.get(c.name), "category": c.tree.root,
                      "attributes": c.tree.identity(), "instance": c.tree.instance()} for c in b.concepts],
        "files": files,
        "items_total": sum(f["items"] for f in files.values()),
        "images": b.w.images,
        "items": items,
    }


def _answer_key(answer: Any) -> str:
    return f"{len(answer)} present" if isinstance(answer, list) else str(answer)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _prepare(out: Path) -> None:
    """An empty folder, or one this generator wrote before (its files are removed first, so nothing stale
    of an earlier, larger run is left for a loader or an importer to find)."""
    if out.exists() and any(out.iterdir()):
        manifest = out / "manifest.json"
        ours = False
        if manifest.is_file():
            try:
                ours = json.loads(manifest.read_text(encoding="utf-8")).get("generator") == GENERATOR
            except (json.JSONDecodeError, AttributeError):
                ours = False
        if not ours:
            raise FileExistsError(f"{out} is not empty and not a folder `slc data qa` wrote; choose a new --out")
        for name in OWNED:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


__all__ = ["DEFAULT_CONCEPTS", "FILES", "GENERATOR", "QAConfig", "QAResult", "VERSION", "generate_qa"]
