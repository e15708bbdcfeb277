"""The concept world's large role (slc.training.large_role): trained on exactly what the graph sends it, and
the shipped checkpoint verifies and answers in the graph's protocol on concepts it never saw.

The rows are built by the graph's own prompt builders (slc.graphs.prompting), their replies parsed by the
graph's own parsers and resolved by the graph's own finalize rule, so a protocol change breaks these tests
before it breaks the demo.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from slc.training import large_role as LR


@pytest.fixture(scope="module")
def pool():
    from slc.training.identity_data import make_split

    return LR.ConceptPool(make_split(0).validation[:6], size=64, seed=0)


def test_the_tokens_cover_every_fixed_span_of_the_prompts_it_is_sent():
    from slc.agent import prompts as P

    tokens = set(LR.protocol_tokens())
    assert P.VERIFY_PHOTO_LABEL in tokens and P.REASON_FORMAT in tokens
    head = P.VERIFY_SYSTEM.split("{nonce}")[0]
    assert head in tokens  # the ~100-token instruction is one token for this model, and changes with the prompt
    assert all(len(t) >= 3 for t in tokens)


@pytest.mark.parametrize("seed", range(3))
def test_verify_rows_are_the_graphs_messages_and_their_replies_resolve_to_the_truth(pool, seed):
    """A reply taught to the model parses with parse_verdicts and, through the graph's finalize rule, gives
    the renderer's truth for every claim (right claims kept, wrong ones flipped, unknown ones decided)."""
    from slc.agent.detection import Detection
    from slc.graphs import prompting
    from slc.graphs.nodes import _resolve
    from slc.graphs.state import Verdict

    rng = random.Random(seed)
    scenes = pool.scenes(seed)
    for _ in range(25):
        messages, reply, meta = LR.verify_row(pool, next(scenes), rng, references=2)
        system, human = messages
        assert "careful visual verifier" in system.content
        images = [p for p in human.content if p.get("type") == "image_url"]
        assert len(images) == 1 + 2 * len(meta["claims"])  # the photo, then 2 reference photos per claim
        claims = [prompting.Claim(id=f"c{i}", concept=f"x{i}", claim=c) for i, c in enumerate(meta["claims"], 1)]
        parsed = prompting.parse_verdicts(reply, claims)
        for c, status, truth in zip(claims, meta["claims"], meta["truth"]):
            rv = parsed[c.id]
            v = Verdict(concept=c.concept, round=0, claim=status, verdict=rv.verdict, visible=rv.visible)
            present, verified, _ = _resolve(Detection(concept=c.concept, status=status, confidence=0.5), v)
            assert verified and present == ("true" if truth else "false")


def _qa_folder(tmp_path_factory, split: str, concepts: int):
    """A small QA folder (`slc data qa --split ...`), each concept's identity as memory would hold it."""
    from slc.memory.types import Identity
    from slc.training.concept_world_qa import QAConfig, generate_qa
    from slc.training.large_role_data import QAFolder

    root = tmp_path_factory.mktemp(f"qa-{split}")
    manifest = generate_qa(root, QAConfig(split=split, concepts=concepts)).manifest
    identities = {c["name"]: Identity(category=c["category"], attributes=c["attributes"]) for c in manifest["concepts"]}
    return QAFolder.load(root, identities)


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory):
    """Training concepts."""
    return _qa_folder(tmp_path_factory, "train", 6)


def test_every_mode_shape_is_taught_a_reply_its_own_parser_reads(qa_folder):
    """Each shape's messages are built by the mode's own builder, and its reply is read back by the parser that
    mode uses (score_reply: the graph's verdict / paper / answer parsers, the harness's strict letter and yes/no
    parsers) as exactly what was taught."""
    from slc.training.large_role_data import SHAPES, rows_from_folder

    seen = {}
    stream = rows_from_folder(qa_folder, 0)
    for _ in range(400):
        messages, reply, meta = next(stream)
        seen[meta["shape"]] = seen.get(meta["shape"], 0) + 1
        scores = LR.score_reply(reply, reply, meta)
        assert scores and all(v == 1 for k, v in scores.items() if not k.startswith("unparsed")), (meta, reply)
        assert not any(k.startswith("unparsed") for k in scores)
    assert set(seen) == set(SHAPES)


def test_answer_rows_follow_the_report_and_the_facts(qa_folder):
    """The answerer is taught to trust the verified report on presence questions (catching wrong claims is
    reflection's job) and to answer text-only questions from memory's facts."""
    from slc.training.concept_world_qa import ACCESSORY_WORDS, PATTERN_WORDS
    from slc.training.large_role_data import rows_from_folder

    stream = rows_from_folder(qa_folder, 1, shapes={"reason": 1.0})
    checked = {"recognition": 0, "text": 0}
    for _ in range(200):
        messages, reply, meta = next(stream)
        answer = json.loads(reply)["answer"]
        data = re.search(r"<<<DATA \w+\n(.*)\nDATA \w+>>>", messages[0].content, re.S).group(1)
        report = json.loads(data)
        if meta["task"] == "recognition":
            asked = re.search(r"Is (<\w+>) in", messages[-1].content[-1]["text"]).group(1)
            entry = next(d for d in report["detections"] if d["concept"] == asked)  # recall may bring others too
            assert answer == ("Yes" if entry["present"] == "true" else "No")
            checked["recognition"] += 1
        elif "detections" not in report:
            question = messages[-1].content
            fact = report["facts"][0]
            letter_text = re.search(rf"^{answer}\. (.*)$", question, re.M).group(1)
            a = fact["attributes"]
            assert letter_text in (fact["category"], a["colour"], PATTERN_WORDS[a["pattern"]],
                                   ACCESSORY_WORDS[a["accessory"]]), (letter_text, fact)
            checked["text"] += 1
    assert checked["recognition"] >= 10 and checked["text"] >= 10


def test_training_rows_label_only_the_reply(pool, tmp_path):
    cfg = LR.LargeRoleConfig(text_hidden_size=32, text_layers=1, vision_hidden_size=32, vision_layers=1)
    model, processor = LR.build_base(tmp_path / "base", cfg)
    row = LR.verify_row(pool, next(pool.scenes(0)), random.Random(0), 2)
    batch = LR.encode_rows(processor, [row])
    labelled = batch["labels"][0][batch["labels"][0] != -100]
    text = processor.tokenizer.decode(labelled, skip_special_tokens=True)
    assert text == row[1]
    assert len(labelled) <= 12  # the reply's JSON frame is whole tokens: the model writes few tokens
    assert model(**batch).loss.isfinite()


def test_the_shipped_large_role_matches_the_prompts_this_package_sends():
    path = LR.shipped_large_role()
    manifest = json.loads((path / LR.MANIFEST).read_text())
    assert manifest["validation"]["unparsed"] == 0
    assert (path / "model.safetensors").stat().st_size < 20 * 2**20


@pytest.fixture(scope="module")
def validation_folder(tmp_path_factory):
    """Validation concepts (never trained on)."""
    return _qa_folder(tmp_path_factory, "validation", 12)


@pytest.mark.integration
def test_the_shipped_large_role_answers_in_the_protocol_in_process_and_over_transformers_serve(validation_folder):
    """On validation concepts it never saw, every reply parses with the graph's and the harness's parsers, and
    the answer call follows a one-concept verified report on presence questions; `transformers serve` (real
    HTTP, ChatOpenAI) gives the same replies as in-process. What it does NOT do well (verifying claims, multiple
    choice, following a report that lists other recalled concepts too: 0.6 on these rows with them) is measured
    in its manifest and in benchmarks/collaboration.py (docs/COLLABORATION.md), not claimed here."""
    from langchain_openai import ChatOpenAI

    from slc.agent.large_vlm import serve_local
    from slc.agent.loading import load_vlm
    from slc.agent.local_chat import LocalChatVLM
    from slc.training.large_role_data import rows_from_folder

    path = LR.shipped_large_role()
    model, processor = load_vlm(str(path), device="cpu", dtype="float32")
    scores = LR.evaluate(model, processor, rows_from_folder(validation_folder, 3, distractors=False), n=60)
    assert scores["unparsed"] == 0, scores
    assert scores["reason/recognition"]["accuracy"] >= 0.9, scores
    local = LocalChatVLM(model=str(path), max_tokens=48)
    stream = rows_from_folder(validation_folder, 4, shapes={"verify": 0.5, "reason": 0.5})
    calls = [next(stream)[0] for _ in range(3)]
    replies = [local.invoke(m).content for m in calls]
    with serve_local(path) as url:
        served = ChatOpenAI(model=str(path), base_url=url, api_key="none", max_tokens=48, temperature=0)
        assert [served.invoke(m).content.strip() for m in calls] == replies
