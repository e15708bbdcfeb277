"""The large role for the concept world: a tiny VLM that knows no user concept but sees well, trained on the
graph's own protocol (the reflection call's verdict JSON, the answer JSON) so the collaboration can be
measured end to end offline (issue "The collaboration, measured end to end").

What it learns, on TRAINING concepts only (those no identity-benchmark split holds out; the QA benchmark's
validation and test concepts are never shown):

- every mode's prompt shape on the QA benchmark's question forms (``slc data qa --split train``, read by the
  eval loaders, messages built by each mode's own builder: :mod:`slc.training.large_role_data`): the graph's
  batched verification (photo, each claim's reference photos, the claims JSON) -> ``{"verdicts": [...]}``; the
  SLC paper's per-concept yes/no questions -> ``{"q1", "q2"}``; the graph's answer call (JSON report or the
  paper's report lines) -> ``{"answer", "concepts_used"}``; the large model alone, with memory's facts, with
  reference photos -> an option letter or Yes/No;
- verification calls about CaT scenes (positives, easy / hard negatives, look-alike twins) of the training
  concepts (:func:`verify_row`), and an auxiliary property loss on such scenes (dense targets: shape, pattern,
  accessory, marks, colour, proportions) so its vision path learns to see fast.

Why a tokenizer with the protocol's fixed texts as whole tokens: the verifier's instructions are ~850 tokens
in a 1,024-word byte-level BPE, which a ~2 M-parameter model cannot read past on 2 CPU cores; every fixed
span of the versioned prompts (and the reply's JSON frame) is one token here, so the model reads only what
varies (claims, facts, question, photos). The served text is unchanged: ``transformers serve`` and the
in-process model receive the real prompts. The checkpoint records the prompt versions it was built for
(:data:`MANIFEST`); a changed prompt means rebuilding it (checked by the tests).
"""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "slc_large_role.json"
VERSION = 1
#: The large role shipped with the package (``slc demo``'s default), trained by the command in its manifest.
SHIPPED_LARGE_ROLE = Path(__file__).resolve().parent / "banks" / "large-role-tiny"

#: Reply pieces the model emits as single tokens (the verdict JSON and the answer JSON frames).
VERDICTS_OPEN = '{"verdicts": ['
VERDICT_ID = '{{"id": "c{n}", "visible": '
VISIBLE = ("true, ", "false, ", "null, ")
VERDICT_WORD = '"verdict": "{word}"}}'  # after "visible": what it sees first, then whether the claim holds
ANSWER_OPEN = '{"answer": "'
ANSWER_CLOSE = '", "concepts_used": []}'
MAX_CLAIMS = 8


def verdict_reply(verdicts: Sequence[tuple[str, bool | None]]) -> str:
    """The verifier reply for (verdict word, visible) per claim c1, c2...: what the large role is taught."""
    parts = [VERDICT_ID.format(n=i) + VISIBLE[2 if v is None else 0 if v else 1] + VERDICT_WORD.format(word=w)
             for i, (w, v) in enumerate(verdicts, 1)]
    return VERDICTS_OPEN + ", ".join(parts) + "]}"


def answer_reply(answer: str) -> str:
    return ANSWER_OPEN + answer + ANSWER_CLOSE


def protocol_tokens() -> list[str]:
    """Every fixed span of the prompts the large role is sent (literal text between placeholders) and of the
    replies it writes, longest first. Built from :mod:`slc.agent.prompts` itself, so a changed prompt changes
    the tokens (and the manifest's versions say which prompts the checkpoint was trained on)."""
    from slc.agent import prompts as P

    from slc.training.large_role_data import PAPER_CLOSE, PAPER_MID, PAPER_OPEN

    formatted = [P.VERIFY_SYSTEM, P.VERIFY_USER, P.VERIFY_REFERENCES_LABEL, P.VERIFY_RETRY, P.REASON_SYSTEM,
                 P.EVAL_CHOICE, P.EVAL_RECOGNITION, P.EVAL_OPEN, P.EVAL_MEMORY_FACTS, P.EVAL_REFERENCES_LABEL,
                 P.PAPER_REFLECT_SYSTEM, P.PAPER_REFLECT_USER, P.PAPER_REASON_SYSTEM, P.PAPER_REPORT_PRESENT,
                 P.PAPER_REPORT_ABSENT, P.PAPER_Q_ABSOLUTE, P.PAPER_Q_ABSOLUTE_ANY, P.PAPER_Q_RELATIVE,
                 P.PAPER_Q_RELATIVE_ANY]
    literal = [P.VERIFY_PHOTO_LABEL, P.REASON_FORMAT, P.REASON_REPORT_VISUAL, P.REASON_REPORT_TEXT,
               P.EVAL_QUESTION_PHOTO_LABEL, PAPER_OPEN, PAPER_MID, PAPER_CLOSE]
    spans: set[str] = set()
    for template in formatted:
        spans.update(text for text, *_ in string.Formatter().parse(template) if text)
    spans.update(literal)
    # the claims and report JSON (json.dumps(indent=1)): keys with their indentation
    for key in ("id", "concept", "claim", "category", "location_absolute", "location_relative", "description",
                "reference_photos", "present", "verified", "location-absolute", "location-relative", "note"):
        spans.update({f'\n  "{key}": ', f'\n   "{key}": ', f'\n    "{key}": '})
    spans.update({'{"concept": "', '", "category": "', '", "attributes": {"', '"}}', ' "q1": ', ' "q2": '})
    for key in ("identity_attributes", "attributes", "facts", "detections", "tree"):
        spans.update({f'\n  "{key}": {{', f'\n   "{key}": {{', f'\n    "{key}": {{', f'\n  "{key}": ['})
    spans.update({VERDICTS_OPEN, ANSWER_OPEN, ANSWER_CLOSE, *VISIBLE})
    spans.update(VERDICT_ID.format(n=i) for i in range(1, MAX_CLAIMS + 1))
    spans.update(VERDICT_WORD.format(word=w) for w in ("agree", "disagree", "uncertain"))
    return sorted((s for s in spans if len(s) >= 3), key=len, reverse=True)


class LargeRoleConfig(BaseModel):
    """How the large role is built and trained (a small config object)."""

    model_config = ConfigDict(extra="forbid")

    budget_cpu_s: float = Field(default=600, gt=0, description="Training CPU time (data rendering included).")
    max_steps: int | None = Field(default=None, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    warmup: float = Field(default=0.03, ge=0, lt=1)
    min_lr_ratio: float = Field(default=0.05, ge=0, le=1)
    batch: int = Field(default=16, ge=1)
    text_hidden_size: int = Field(default=128, ge=16)
    text_layers: int = Field(default=4, ge=1)
    vision_hidden_size: int = Field(default=64, ge=16)
    vision_layers: int = Field(default=2, ge=1)
    size: int = Field(default=64, ge=32, description="Side of the rendered photos (the scratch model's image size).")
    references: int = Field(default=2, ge=0, description="Reference photos per claim (settings.large.verify_references).")
    property_weight: float = Field(default=1.0, ge=0, description=(
        "Weight of the auxiliary property loss on each row's photo (a throw-away head reads shape, colour, "
        "pattern, accessory, marks, proportions off the pooled image tokens): dense targets make the vision path "
        "learn fast, as in identity training; the head is not part of the checkpoint."))
    scene_share: float = Field(default=0.2, ge=0, le=1, description="Share of rows that verify claims about CaT scenes.")
    train_concepts: int = Field(default=300, ge=2, description="Training concepts in the training QA folder.")
    init: str | None = Field(default=None, description=(
        "Continue from this large-role checkpoint (its tokenizer already has the protocol tokens) instead of a "
        "from-scratch model."))
    seed: int = 0
    torch_threads: int | None = Field(default=None, ge=1)


# -- scenes ------------------------------------------------------------------------------------------------


class Scene(BaseModel):
    """One rendered photo and what is truly in it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Any
    concept: int = Field(description="Index (into the pool) of the concept the scene is about.")
    present: bool
    kind: str = Field(description="'positive', 'easy', 'hard-<k>', 'twin' (CaT's sample kinds).")
    location: str | None = Field(description="Where the main object is (3x3 name).")
    targets: Any = Field(default=None, description="The photo's dense property targets (identity_data.PropertyTargets).")


class ConceptPool:
    """Training concepts with their registration photos, and an endless stream of CaT scenes of them."""

    def __init__(self, concepts: Sequence[Any], *, size: int, seed: int, forbidden: Sequence[Any] = (),
                 allowed: Callable[[Any], bool] | None = None) -> None:
        from slc.training.identity_data import registration_photos

        self.concepts = list(concepts)
        self.size = size
        self.seed = seed
        self.forbidden = list(forbidden)
        self.allowed = allowed or (lambda tree: True)
        self.references = [registration_photos(c, size, seed=i) for i, c in enumerate(self.concepts)]

    def scenes(self, seed: int) -> Iterator[Scene]:
        """CaT samples of every concept (positives with diverse free leaves, easy / hard negatives, twins) as
        rendered photos, round after round (as :func:`slc.training.identity_data.training_samples`)."""
        from slc.cat.edits import SamplingPlan, sample_edits
        from slc.cat.render import render_with_info
        from slc.training.identity_data import property_targets
        from slc.cat import world as W

        rng = random.Random(f"large-role-scenes:{seed}")
        r = 0
        while True:
            order = list(range(len(self.concepts)))
            rng.shuffle(order)
            for i in order:
                c = self.concepts[i]
                plan = SamplingPlan(positives=2, easy=1, hard=1, twins=1, k_weights={1: 0.6, 2: 0.3, 3: 0.1},
                                    diversity=0.6, seed=seed * 100_003 + r * 7 + i)
                for s in sample_edits(c.name, c.tree, plan, W.WORLD_VOCABULARY, self.forbidden, twin=W.twin_change):
                    if not self.allowed(s.tree):
                        continue
                    image, info = render_with_info(s.tree, s.tree.free(), size=self.size, seed=s.render_seed)
                    yield Scene(image=image, concept=i, present=s.expected_present, kind=s.difficulty,
                                location=info.location_absolute, targets=property_targets(s.tree, s.tree.free()))
            r += 1


# -- rows: (messages, reply) -------------------------------------------------------------------------------


def _concept(pool: ConceptPool, i: int, rng: random.Random, *, noisy: bool = True) -> Any:
    """The memory record the graph would hold for pool concept ``i``: identity read off its photos (here the
    tree's vocabulary leaves, with the small VLM's typical slips when ``noisy``), reference photos."""
    from slc.cat import world as W
    from slc.memory.types import Concept, Identity

    wc = pool.concepts[i]
    ident = dict(wc.tree.identity())
    attrs = {d: ident.get(d, "") for d in ("colour", "pattern", "accessory")}
    if noisy and rng.random() < 0.3:  # a derived identity is often off in one slot (measured ~50% exact)
        d = rng.choice(list(attrs))
        choices = {"colour": list(W.PALETTE), "pattern": W.PATTERNS, "accessory": W.ACCESSORIES}[d]
        attrs[d] = rng.choice(list(choices))
    description = rng.choice(["", f"my {wc.tree.root}", wc.description]) if noisy else wc.description
    return Concept(id=f"id-{wc.name}", tenant="t", name=wc.name, description=description,
                   identity=Identity(category=wc.tree.root, attributes=attrs))


def verify_row(pool: ConceptPool, scene: Scene, rng: random.Random, references: int) -> tuple[list[Any], str, dict[str, Any]]:
    """A reflection call about ``scene`` as the graph sends it, and the right verdicts."""
    from slc.agent.detection import Detection
    from slc.agent.large_vlm import image_part
    from slc.graphs import prompting
    from slc.graphs.state import Candidate

    from slc.cat import world as W

    subjects = [(scene.concept, scene.present)]
    if rng.random() < 0.35:  # a second claim, about a concept that is not in the photo
        other = rng.randrange(len(pool.concepts))
        if other != scene.concept:
            subjects.append((other, False))
    rng.shuffle(subjects)
    detections, candidates, truth = [], {}, []
    for i, present in subjects:
        status = rng.choices(["present", "absent", "unknown"], weights=[0.5, 0.4, 0.1])[0]
        loc = None
        if status == "present":
            loc = scene.location if (present and rng.random() < 0.7) else rng.choice(W.POSITIONS)
        wc = pool.concepts[i]
        detections.append(Detection(concept=wc.name, status=status, confidence=round(rng.random(), 2),
                                    location_absolute=loc))
        candidates[wc.name] = Candidate(concept=_concept(pool, i, rng), score=1.0, matched_by=["name"])
        truth.append((status, present))
    claims = prompting.make_claims(detections, candidates)
    refs = {c.id: [image_part(im, 256, detail="low") for im in pool.references[i][:references]]
            for c, (i, _) in zip(claims, subjects)} if references else {}
    messages = prompting.verify_messages(claims, image_part(scene.image, 1024), refs)
    verdicts = []
    for status, present in truth:
        if status == "unknown":
            verdicts.append(("disagree", present))
        else:
            verdicts.append(("agree" if (status == "present") == present else "disagree", present))
    meta = {"task": "verify", "kind": scene.kind, "claims": [s for s, _ in truth], "truth": [p for _, p in truth]}
    return messages, verdict_reply(verdicts), meta


def rows(pool: ConceptPool, folder: Any, cfg: LargeRoleConfig, seed: int) -> Iterator[tuple[list[Any], str, dict[str, Any]]]:
    """Endless (messages, reply, meta) rows: the QA folder's items in every mode's shape
    (:func:`slc.training.large_role_data.rows_from_folder`), and a share ``scene_share`` of verification calls
    about CaT scenes of the pool (all negative kinds, twins included, one photo per claim's concept)."""
    from slc.training.large_role_data import rows_from_folder

    rng = random.Random(f"large-role-rows:{seed}")
    qa = rows_from_folder(folder, seed, references=cfg.references)
    scenes = pool.scenes(seed)
    while True:
        if rng.random() < cfg.scene_share:
            messages, reply, meta = verify_row(pool, next(scenes), rng, cfg.references)
            meta["shape"] = "verify-scene"
            yield messages, reply, meta
        else:
            yield next(qa)


# -- model -------------------------------------------------------------------------------------------------


def build_base(out_dir: str | Path, cfg: LargeRoleConfig) -> tuple[Any, Any]:
    """A from-scratch tiny Idefics3 (:func:`slc.training.scratch.build_scratch_vlm`) with the protocol's fixed
    spans added to its tokenizer as whole tokens; returns (model, processor), not yet trained."""
    from tokenizers import AddedToken

    from slc.agent.loading import load_vlm
    from slc.cat import world as W
    from slc.training.data import WORLD_WORDS
    from slc.training.scratch import build_scratch_vlm

    words = (*WORLD_WORDS, *(w for p in W.POSITIONS for w in p.split()), "absent", "unknown", "Yes", "No", "true",
             "false", "identity_attributes", "yes", "no", "both", "only", "neither", "above", "below", "side")
    path = build_scratch_vlm("idefics3", Path(out_dir), cfg.seed, extra_words=tuple(dict.fromkeys(words)),
                             text_hidden_size=cfg.text_hidden_size,
                             text_layers=cfg.text_layers, vision_hidden_size=cfg.vision_hidden_size,
                             vision_layers=cfg.vision_layers, image_size=cfg.size)
    model, processor = load_vlm(str(path), device="cpu", dtype="float32")
    tok = processor.tokenizer
    tok.add_tokens([AddedToken(s, normalized=False, special=False) for s in protocol_tokens()])
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    return model, processor


def encode_rows(processor: Any, batch: Sequence[tuple[list[Any], str, dict[str, Any]]]) -> Any:
    """Training inputs of (messages, reply) rows, rendered exactly as the in-process and served model render
    them (:func:`slc.agent.local_chat.messages_to_chat` + the checkpoint's chat template)."""
    from slc.agent.chat_inputs import conversation_inputs
    from slc.agent.local_chat import messages_to_chat

    chats, images = zip(*(messages_to_chat(m) for m, _, _ in batch))
    return conversation_inputs(processor, list(chats), list(images), answer=[r for _, r, _ in batch], padding_side="right")


class LargeRoleRun(BaseModel):
    """What training produced (the model is trained in place)."""

    steps: int
    rows: int
    cpu_s: float
    wall_s: float
    curve: list[dict[str, Any]] = Field(default_factory=list)


def train_large_role(model: Any, processor: Any, pool: ConceptPool, folder: Any, cfg: LargeRoleConfig, *,
                     log: Callable[[str], None] | None = print,
                     on_eval: Callable[[Any, Any], dict[str, Any]] | None = None, eval_every: int = 0) -> LargeRoleRun:
    """Teacher-forced training on :func:`rows` within the CPU budget or ``max_steps`` (cosine schedule over
    whichever ends it), plus the auxiliary property loss on CaT scenes (``property_weight``);
    ``on_eval(model, processor)`` every ``eval_every`` steps, its CPU time excluded."""
    import torch

    from slc.agent.reference import ReferenceHead, ReferenceHeadConfig, image_tokens
    from slc.training.identity_data import PROPERTY_DIM, property_loss
    from slc.training.trainer import TrainClock, TrainConfig, lr_schedule

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    clock = TrainClock()
    aux = ReferenceHead(ReferenceHeadConfig(feature_dim=model.config.text_config.hidden_size, property_dim=PROPERTY_DIM))
    params = [p for p in model.parameters() if p.requires_grad] + (list(aux.parameters()) if cfg.property_weight else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = lr_schedule(TrainConfig(output_dir="-", budget_cpu_s=cfg.budget_cpu_s, max_steps=cfg.max_steps,
                                       warmup=cfg.warmup, min_lr_ratio=cfg.min_lr_ratio), clock)
    stream = rows(pool, folder, cfg, cfg.seed)
    aux_scenes = pool.scenes(cfg.seed + 1)
    model.train()
    steps = seen = 0
    curve: list[dict[str, Any]] = []
    t_log = time.process_time()
    while clock.cpu_s < cfg.budget_cpu_s and (cfg.max_steps is None or steps < cfg.max_steps):
        for g in optimizer.param_groups:
            g["lr"] = cfg.lr * schedule(steps)
        batch = [next(stream) for _ in range(cfg.batch)]
        loss = model(**encode_rows(processor, batch)).loss
        text_loss = float(loss.detach())
        if cfg.property_weight:
            scenes = [next(aux_scenes) for _ in range(cfg.batch)]
            _, props = aux.describe(image_tokens(model, processor, [s.image for s in scenes]))
            loss = loss + cfg.property_weight * property_loss(props, [s.targets for s in scenes])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        steps += 1
        seen += len(batch)
        if on_eval is not None and eval_every and steps % eval_every == 0:
            t0 = time.process_time()
            model.eval()
            point = {"step": steps, "cpu_min": round(clock.cpu_s / 60, 2), **on_eval(model, processor)}
            model.train()
            clock.excluded += time.process_time() - t0
            curve.append(point)
            if log:
                log(json.dumps(point))
        if time.process_time() - t_log > 60:
            t_log = time.process_time()
            point = {"step": steps, "cpu_min": round(clock.cpu_s / 60, 2), "loss": round(float(loss.detach()), 4),
                     "reply_loss": round(text_loss, 4)}
            curve.append(point)
            if log:
                log(json.dumps(point))
    model.eval()
    return LargeRoleRun(steps=steps, rows=seen, cpu_s=round(clock.cpu_s, 1), wall_s=round(clock.wall_s, 1), curve=curve)


# -- evaluation --------------------------------------------------------------------------------------------


def score_reply(text: str, reply: str, meta: dict[str, Any]) -> dict[str, int]:
    """Per-key right (1) / wrong (0) of a generated reply against the taught one, read by the parsers the graph
    and the harness use; keys: ``<shape>`` (and ``<shape>/<claim kind>`` for verdicts), ``unparsed/<shape>``."""
    from slc.evals.parsing import parse_option_letter, parse_yes_no
    from slc.graphs import prompting

    shape = meta["shape"]
    out: dict[str, int] = {}
    if shape in ("verify", "verify-scene"):
        want = json.loads(reply)["verdicts"]
        claims = [prompting.Claim(id=w["id"], concept="x", claim="present") for w in want]
        try:
            got = prompting.parse_verdicts(text, claims)
        except ValueError:
            got = {}
            out[f"unparsed/{shape}"] = 1
        for w, claim, truth in zip(want, meta["claims"], meta["truth"]):
            g = got.get(w["id"])
            right = int(g is not None and g.verdict == w["verdict"] and g.visible == w["visible"])
            kind = "claim-unknown" if claim == "unknown" else "claim-right" if (claim == "present") == truth else "claim-wrong"
            out.setdefault(f"{shape}/{kind}", right)
            out[f"{shape}/{kind}"] = min(out[f"{shape}/{kind}"], right)
        return out
    if shape == "paper-verify":
        try:
            got = prompting.parse_paper_answers(text)
        except ValueError:
            return {"unparsed/paper-verify": 1, shape: 0}
        return {shape: int(got == prompting.parse_paper_answers(reply))}
    if shape in ("reason", "reason-paper"):
        ans = prompting.parse_answer(text)
        want = prompting.parse_answer(reply).text
        out[shape] = int(ans.text.strip() == want)
        out[f"{shape}/{meta['task']}"] = out[shape]
        if not ans.structured:
            out[f"unparsed/{shape}"] = 1
        return out
    # the large model alone: the harness's strict parsers
    if reply in ("Yes", "No"):
        got_yn = parse_yes_no(text)
        out[shape] = int(got_yn is not None and got_yn == (reply == "Yes"))
    else:
        out[shape] = int(parse_option_letter(text, list("ABCDEFGH")) == reply)
    out[f"{shape}/{meta['task']}"] = out[shape]
    return out


def evaluate(model: Any, processor: Any, stream: Iterator[tuple[list[Any], str, dict[str, Any]]], *, n: int = 200) -> dict[str, Any]:
    """Greedy replies to ``n`` rows of ``stream`` (build it over held-out concepts), scored by
    :func:`score_reply`: accuracy per key, and how many replies did not parse."""
    import torch

    from slc.agent.inference import generate_text
    from slc.agent.local_chat import messages_to_chat

    tally: dict[str, list[int]] = {}
    unparsed = 0
    with torch.no_grad():
        for _ in range(n):
            messages, reply, meta = next(stream)
            chat, images = messages_to_chat(messages)
            prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
            text = generate_text(model, processor, inputs, max_new_tokens=48)[0]
            for k, v in score_reply(text, reply, meta).items():
                if k.startswith("unparsed/"):
                    unparsed += v
                else:
                    tally.setdefault(k, []).append(v)
    out: dict[str, Any] = {k: {"n": len(v), "accuracy": round(sum(v) / len(v), 3)} for k, v in sorted(tally.items())}
    out["unparsed"] = unparsed
    out["rows"] = n
    return out


def shipped_large_role() -> Path:
    """The shipped checkpoint's folder; SLCError when it is missing or was trained on other prompt versions
    than this package sends (then rebuild it with the command in its manifest)."""
    from slc.agent.errors import SLCError

    manifest = SHIPPED_LARGE_ROLE / MANIFEST
    if not manifest.is_file():
        raise SLCError(f"the shipped large role is missing ({manifest}); rebuild it with "
                       f"`slc train large-role --out {SHIPPED_LARGE_ROLE}`")
    built = json.loads(manifest.read_text()).get("prompts", {})
    if built != prompt_versions():
        raise SLCError(f"the shipped large role was trained on prompts {built}, this package sends {prompt_versions()}; "
                       f"rebuild it with `slc train large-role --out {SHIPPED_LARGE_ROLE}`")
    return SHIPPED_LARGE_ROLE


def prompt_versions() -> dict[str, str]:
    from slc.agent import prompts as P

    return {"verify": P.VERIFY_PROMPT_VERSION, "reason": P.REASON_PROMPT_VERSION, "eval": P.EVAL_PROMPT_VERSION,
            "eval-memory": P.EVAL_MEMORY_PROMPT_VERSION, "paper": P.PAPER_PROMPT_VERSION}


def scene_pools(cfg: LargeRoleConfig) -> tuple[ConceptPool, ConceptPool]:
    """(training pool, validation pool) of CaT scenes: the identity benchmark's training concepts (no split holds
    them out) and split 0's validation concepts; the test concepts of both splits are never rendered here."""
    from slc.training.identity_benchmark import training_split
    from slc.training.identity_data import make_split

    splits = [make_split(0), make_split(1)]
    train = training_split(splits)
    return (ConceptPool(train.train, size=cfg.size, seed=cfg.seed, forbidden=train.forbidden(), allowed=train.allowed()),
            ConceptPool(splits[0].validation, size=cfg.size, seed=cfg.seed + 1))


def qa_folders(work: Path, cfg: LargeRoleConfig, log: Callable[[str], None] | None = print) -> tuple[Any, Any]:
    """(training, validation) QA folders (``slc data qa --split train|validation``) with each concept's identity
    read off its photos by the shipped small VLM, as the eval's import does."""
    from slc.agent.adapters import AdapterBank
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import SHIPPED_IDENTITY_BANK
    from slc.training.concept_world_qa import QAConfig, generate_qa
    from slc.training.large_role_data import QAFolder, read_identities

    bank = AdapterBank.load(SHIPPED_IDENTITY_BANK)
    small = SmallVLM.from_pretrained(bank.base_model, bank=bank, locate="never")
    out = []
    for split, n in (("train", cfg.train_concepts), ("validation", 48)):
        root = work / f"qa-{split}"
        t = time.process_time()
        manifest = generate_qa(root, QAConfig(split=split, seed=cfg.seed, size=cfg.size, concepts=n)).manifest  # type: ignore[arg-type]
        names = [c["name"] for c in manifest["concepts"]]
        identities = read_identities(root, names, small, work / f"identities-{split}.json")
        out.append(QAFolder.load(root, identities))
        if log:
            log(json.dumps({"qa": split, "concepts": len(names), "items": len(out[-1].items),
                            "cpu_s": round(time.process_time() - t, 1)}))
    return out[0], out[1]


def build_large_role(out_dir: str | Path, cfg: LargeRoleConfig, *, n_eval: int = 300, eval_every: int = 0,
                     log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Build, train, evaluate on validation concepts and save the large role in ``out_dir`` (a checkpoint any
    runtime loads: ``transformers serve``, :class:`~slc.agent.local_chat.LocalChatVLM`); returns the manifest.
    Written to a temporary sibling and renamed into place, so the folder is complete or absent."""
    from slc.training.scratch import building_folder, move_into_place

    out = Path(out_dir).expanduser().resolve()
    with building_folder(out) as tmp:
        before = None
        if cfg.init:
            from slc.agent.loading import load_vlm

            model, processor = load_vlm(str(cfg.init), device="cpu", dtype="float32")
            before = json.loads((Path(cfg.init) / MANIFEST).read_text())
        else:
            model, processor = build_base(tmp / "init", cfg)
        train_qa, val_qa = qa_folders(tmp, cfg, log)
        train_pool, val_pool = scene_pools(cfg)

        def validation(seed: int) -> Iterator[tuple[list[Any], str, dict[str, Any]]]:
            return rows(val_pool, val_qa, cfg, 10_000 + seed)

        probe = (lambda m, p: {"validation": evaluate(m, p, validation(0), n=48)}) if eval_every else None
        run = train_large_role(model, processor, train_pool, train_qa, cfg, log=log, on_eval=probe, eval_every=eval_every)
        scores = evaluate(model, processor, validation(1), n=n_eval)
        final = tmp / "model"
        model.save_pretrained(final)
        processor.save_pretrained(final)
        command = f"slc train large-role --out <folder> --steps {cfg.max_steps} --seed {cfg.seed}"
        if before is not None:  # the chain of commands that reproduces it, oldest first
            command = f"{before['command']}  THEN  {command} --init <that folder>"
        manifest = {"version": VERSION, "command": command, "config": cfg.model_dump(), "run": run.model_dump(),
                    "validation": scores, "continued_from": ({"command": before["command"], "run": before["run"],
                                                              "validation": before["validation"]} if before else None),
                    "prompts": prompt_versions(), "parameters": sum(p.numel() for p in model.parameters()),
                    "trained_on": "the identity benchmark's training concepts only (QA folder --split train + CaT "
                                  "scenes); validation: split 0's validation concepts; never the test concepts"}
        (final / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        move_into_place(final, out)
    return manifest


__all__ = ["ANSWER_CLOSE", "ANSWER_OPEN", "ConceptPool", "LargeRoleConfig", "LargeRoleRun", "MANIFEST", "Scene",
           "SHIPPED_LARGE_ROLE", "answer_reply", "build_base", "build_large_role", "encode_rows", "evaluate",
           "prompt_versions", "protocol_tokens", "qa_folders", "rows", "scene_pools", "score_reply",
           "shipped_large_role", "train_large_role", "verdict_reply", "verify_row"]
