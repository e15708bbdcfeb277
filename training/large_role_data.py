"""Training rows for the large role from a concept-world QA folder of TRAINING concepts, in every shape the
compared modes send it (issue "The collaboration, measured end to end").

Why from the benchmark's own generator and loaders: the large role must be taught the question forms it is
scored on (recognition, visual and text-only multiple choice, two-concept questions) and every prompt shape a
mode sends (the graph's verification and answer calls, the SLC paper's per-concept questions and report lines,
the large model alone, with memory's facts, with reference photos), so no mode is handicapped by a prompt its
large role never saw. ``slc data qa --split train`` writes the folder from concepts the benchmark's test and
validation splits never contain; its items are read by the very loaders ``slc eval`` uses, and the messages
are built by the very functions each mode calls (:mod:`slc.graphs.prompting`,
:class:`slc.evals.predictors.ChatModelPredictor`). What the small VLM would have claimed is simulated from
the photo's truth (right most of the time, with and without a location), as is the verified report.

Targets: a verdict or a yes/no answer follows the renderer's truth (``presence.json``, the manifest's objects);
an answer call follows the report it is given for presence questions (the answerer is told to trust the
verified report: catching wrong claims is reflection's job), and the truth otherwise; a text-only answer
follows the concept's facts (what the answerer can know).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Mode shapes and their share of the rows.
SHAPES: dict[str, float] = {"verify": 0.30, "paper-verify": 0.10, "reason": 0.24, "reason-paper": 0.08,
                            "large": 0.08, "large-desc": 0.10, "large-refs": 0.10}
PAPER_OPEN = '{"q1": "'
PAPER_MID = '", "q2": "'
PAPER_CLOSE = '"}'


def paper_reply(q1: bool, q2: bool) -> str:
    return PAPER_OPEN + ("yes" if q1 else "no") + PAPER_MID + ("yes" if q2 else "no") + PAPER_CLOSE


class FactsMemory:
    """What a memory holds of the folder's concepts (``exists``/``get``), for message builders that read memory."""

    def __init__(self, concepts: dict[str, Any]) -> None:
        self.concepts = concepts

    def exists(self, name: str) -> bool:
        return name in self.concepts

    def get(self, name: str) -> Any:
        return self.concepts[name]


def read_identities(root: Path, names: Sequence[str], small_vlm: Any, cache: Path) -> dict[str, Any]:
    """Each concept's identity as the small VLM reads it off its registration photos (cached in ``cache``), the
    identity the eval's concept import gives it (:func:`slc.graphs.registration.identity_reader`)."""
    from slc.memory.types import Identity

    known: dict[str, Any] = json.loads(cache.read_text()) if cache.is_file() else {}
    for name in names:
        if name not in known:
            photos = sorted((root / "yollava-data" / "train" / name).glob("*.png"))
            got = small_vlm.describe_identity([str(p) for p in photos])
            known[name] = got.model_dump() if got is not None else None
    cache.write_text(json.dumps(known, indent=0, sort_keys=True))
    return {n: (Identity.model_validate(v) if v else None) for n, v in known.items() if n in set(names)}


class QAFolder(BaseModel):
    """One QA folder's items (as ``slc eval`` loads them), truth, photos and concepts."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    items: list[Any]
    presence: dict[str, dict[str, bool]]
    objects: dict[str, list[dict[str, Any]]]
    concepts: dict[str, Any]

    @classmethod
    def load(cls, root: str | Path, identities: dict[str, Any] | None = None) -> QAFolder:
        from slc.evals.datasets import load_benchmark
        from slc.memory.types import Concept, ReferenceImage
        from slc.training.concept_world_qa import FILES

        root = Path(root)
        items: list[Any] = []
        for name in dict.fromkeys(FILES.values()):
            if name == "mc-llava-captions":
                continue  # free captions are not a question form the large role answers
            items += load_benchmark(name, root=root).items
        manifest = json.loads((root / "manifest.json").read_text())
        size = int(manifest["size"])
        concepts = {}
        for c in manifest["concepts"]:
            photos = sorted((root / "yollava-data" / "train" / c["name"]).glob("*.png"))
            concepts[c["name"]] = Concept(
                id=f"qa-{c['name']}", tenant="train", name=c["name"], identity=(identities or {}).get(c["name"]),
                images=[ReferenceImage(id=f"{c['name']}-{k}", path=str(p), sha256="0" * 64, width=size, height=size)
                        for k, p in enumerate(photos)])
        return cls(root=root, items=items, presence=json.loads((root / "presence.json").read_text()),
                   objects={k: v["objects"] for k, v in manifest["images"].items()}, concepts=concepts)


def _photo(folder: QAFolder, rel: str) -> Any:
    from slc.agent.images import load_image

    return load_image(folder.root / rel)


def _object_of(folder: QAFolder, rel: str, concept: str) -> dict[str, Any] | None:
    return next((o for o in folder.objects.get(rel, []) if o.get("concept") == concept), None)


def _claims(folder: QAFolder, rel: str, names: Sequence[str], rng: random.Random, accuracy: float) -> list[Any]:
    """A small VLM's detections of ``names`` in photo ``rel``: right with probability ``accuracy``; a present
    claim carries the concept's true cell (or, when wrong, another object's or a random one) most of the time."""
    from slc.agent.detection import Detection
    from slc.cat import world as W

    out = []
    for name in names:
        truth = folder.presence.get(rel, {}).get(name, False)
        present = truth if rng.random() < accuracy else not truth
        status = "present" if present else "absent"
        if rng.random() < 0.05:
            status = "unknown"
        loc = None
        if status == "present" and rng.random() < 0.8:
            obj = _object_of(folder, rel, name)
            others = [o["location"] for o in folder.objects.get(rel, []) if o.get("location")]
            loc = obj["location"] if obj is not None and rng.random() < 0.85 else rng.choice(others or list(W.POSITIONS))
        out.append(Detection(concept=name, status=status, confidence=round(rng.random(), 2), location_absolute=loc))
    return out


def _final(detections: Sequence[Any], folder: QAFolder, rel: str, candidates: dict[str, Any], rng: random.Random,
           accuracy: float) -> list[Any]:
    """The verified report: each claim corrected to the truth with probability ``accuracy`` (else as claimed)."""
    from slc.graphs.state import FinalDetection

    out = []
    for d in detections:
        truth = folder.presence.get(rel, {}).get(d.concept, False)
        claimed = {"present": "true", "absent": "false"}.get(d.status, "unknown")
        present = ("true" if truth else "false") if rng.random() < accuracy else claimed
        obj = _object_of(folder, rel, d.concept)
        loc = d.location_absolute if present == "true" and d.status == "present" else (
            obj["location"] if present == "true" and obj is not None and rng.random() < 0.5 else None)
        c = candidates[d.concept]
        out.append(FinalDetection(concept=d.concept, present=present, verified=True, location_absolute=loc,
                                  category=c.category, attributes=c.attributes))
    return out


def _shuffled(item: Any, rng: random.Random) -> Any:
    """A choice item with its options in a random order (the harness scores both orders)."""
    if getattr(item, "task", None) != "choice":
        return item
    texts = list(item.options.values())
    right = item.options[item.answer]
    rng.shuffle(texts)
    options = dict(zip("ABCDEFGH", texts))
    return item.model_copy(update={"options": options, "answer": next(k for k, v in options.items() if v == right)})


def _truth_reply(item: Any) -> str:
    if item.task == "recognition":
        return "Yes" if item.expected else "No"
    return item.answer


def _report_reply(item: Any, final: Sequence[Any]) -> str:
    """What an answerer that trusts the report says: presence questions follow it, others the truth."""
    present = {f.concept: f.present == "true" for f in final}
    if item.task == "recognition":
        return "Yes" if present.get(item.concepts[0], False) else "No"
    if item.kind in ("both", "only-a", "only-b", "neither") and len(item.concepts) == 2:
        a, b = (present.get(c, False) for c in item.concepts)
        want = {(True, True): "both", (True, False): "only <", (False, True): "only <", (False, False): "neither"}[(a, b)]
        if want == "only <":
            want = f"only <{item.concepts[0] if a else item.concepts[1]}>"
        return next((k for k, v in item.options.items() if v.startswith(want)), item.answer)
    return item.answer


def _facts_reply(item: Any, concepts: dict[str, Any]) -> str:
    """A text-only answer from what memory holds of the concept (its identity read off its photos)."""
    from slc.training.concept_world_qa import ACCESSORY_WORDS, PATTERN_WORDS

    c = concepts.get(item.concepts[0]) if item.concepts else None
    ident = c.identity if c is not None else None
    if ident is not None:
        attrs = ident.attributes
        known = [ident.category, attrs.get("colour"), PATTERN_WORDS.get(attrs.get("pattern", "")),
                 ACCESSORY_WORDS.get(attrs.get("accessory", ""))]
        for k, v in item.options.items():
            if v in known:
                return k
    return item.answer


def rows_from_folder(folder: QAFolder, seed: int, *, references: int = 2, shapes: dict[str, float] | None = None,
                     distractors: bool = True) -> Iterator[tuple[list[Any], str, dict[str, Any]]]:
    """Endless (messages, reply, meta) rows over the folder's items, each in one mode shape (``SHAPES``);
    ``distractors``: the graph's calls also carry other concepts recall brought along (0-3, random order)."""
    from slc.agent.large_vlm import image_part
    from slc.evals.predictors import ChatModelPredictor, render_prompt
    from slc.graphs import prompting
    from slc.graphs.state import Candidate
    from slc.training.large_role import answer_reply, verdict_reply

    shapes = shapes or SHAPES
    memory = FactsMemory(folder.concepts)
    plain = ChatModelPredictor(None, folder.root, use_item_system=False)
    desc = ChatModelPredictor(None, folder.root, use_item_system=False, memory=memory, descriptions=True)
    refs = ChatModelPredictor(None, folder.root, use_item_system=False, memory=memory, references=references)
    rng = random.Random(f"large-role-qa:{seed}")
    names, weights = list(shapes), list(shapes.values())
    ref_cache: dict[str, list[dict[str, Any]]] = {}

    def ref_parts(name: str) -> list[dict[str, Any]]:
        if name not in ref_cache:
            ref_cache[name] = [image_part(_photo(folder, p.path), 256, detail="low")
                               for p in folder.concepts[name].images[:references]]
        return ref_cache[name]

    while True:
        order = list(range(len(folder.items)))
        rng.shuffle(order)
        for i in order:
            item = _shuffled(folder.items[i], rng)
            shape = rng.choices(names, weights)[0]
            rel = item.images[0] if item.images else None
            meta = {"shape": shape, "kind": item.kind, "task": item.task, "id": item.id}
            if rel is None and shape in ("verify", "paper-verify", "reason-paper"):
                shape = meta["shape"] = "reason"
            cands = {n: Candidate(concept=folder.concepts[n], score=1.0, matched_by=["name"]) for n in item.concepts
                     if n in folder.concepts}
            if shape in ("large", "large-desc", "large-refs"):
                builder = {"large": plain, "large-desc": desc, "large-refs": refs}[shape]
                reply = _facts_reply(item, folder.concepts) if rel is None and shape == "large-desc" else _truth_reply(item)
                yield builder.messages(item), reply, meta
                continue
            if rel is None:  # text-only question: the answer call with the concept's facts
                msgs = prompting.reason_messages(render_prompt(item), [], final=None, candidates=list(cands.values()),
                                                 image_part=None)
                yield msgs, answer_reply(_facts_reply(item, folder.concepts)), meta
                continue
            photo = image_part(_photo(folder, rel), 1024)
            # verification is taught on claims that are wrong almost as often as right (else "agree" is learnt);
            # the answer call on the usual mix
            small_acc = rng.uniform(0.35, 0.8) if shape == "verify" else rng.uniform(0.55, 0.95)
            # other concepts recall brings along by image (the graph detects every candidate, in recall's order)
            others = [n for n in folder.concepts if n not in cands]
            for n in rng.sample(others, k=min(len(others), rng.choice([0, 0, 1, 2, 3]) if distractors else 0)):
                cands[n] = Candidate(concept=folder.concepts[n], score=round(rng.uniform(0.8, 1.0), 2), matched_by=["image"])
            if rng.random() < 0.5:
                cands = dict(rng.sample(list(cands.items()), k=len(cands)))
            dets = _claims(folder, rel, list(cands), rng, small_acc)
            if shape in ("verify", "paper-verify"):  # the graph verifies present claims and the asked concepts' claims
                asked = set(item.concepts)
                dets = [d for d in dets if d.status == "present" or d.concept in asked] or dets[:1]
            if shape == "verify":
                claims = prompting.make_claims(dets, cands)
                msgs = prompting.verify_messages(claims, photo, {c.id: ref_parts(c.concept) for c in claims} if references else {})
                truth = [folder.presence.get(rel, {}).get(d.concept, False) for d in dets]
                verdicts = [("disagree" if d.status == "unknown" else "agree" if (d.status == "present") == t else "disagree", t)
                            for d, t in zip(dets, truth)]
                meta.update(claims=[d.status for d in dets], truth=truth)
                yield msgs, verdict_reply(verdicts), meta
            elif shape == "paper-verify":
                d = rng.choice(dets)
                q = prompting.paper_questions(d, cands.get(d.concept))
                objs = folder.objects.get(rel, [])
                category = cands[d.concept].category if d.concept in cands else None
                same = [o for o in objs if category and o.get("category") == category]
                q1 = any(o.get("location") == d.location_absolute for o in same) if d.location_absolute and d.status == "present" else bool(same)
                q2 = bool(same)
                meta.update(questions=[q.q1, q.q2])
                yield prompting.paper_reflect_messages(q, photo), paper_reply(q1, q2), meta
            else:
                final = _final(dets, folder, rel, cands, rng, rng.uniform(0.7, 1.0))
                if shape == "reason-paper":
                    final = prompting.paper_final(final)
                msgs = prompting.reason_messages(render_prompt(item), [], final=final, candidates=list(cands.values()),
                                                 image_part=photo, report_style="paper" if shape == "reason-paper" else "json")
                yield msgs, answer_reply(_report_reply(item, final)), meta


__all__ = ["FactsMemory", "PAPER_CLOSE", "PAPER_MID", "PAPER_OPEN", "QAFolder", "SHAPES", "paper_reply",
           "read_identities", "rows_from_folder"]
