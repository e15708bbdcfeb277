"""The SLC paper's reflection as a graph configuration (``Context(reflection_style="per-concept",
recheck_absent=False, reflection_rounds=0, report_style="paper")``, the evals' "slc-paper" mode).

TEST DOUBLES (declared, see conftest.py): the large VLM is LangChain's fake chat model
(``GenericFakeChatModel`` recording its calls, replies scripted per question), the small VLM a scripted
detector. What is checked is the graph's logic: exactly one large-VLM call per present-claim plus the answer
call, absent claims never re-checked, the paper's two-no rule, its report lines, and the call counter.
"""

from __future__ import annotations

import json
import re

import pytest

from slc.agent import prompts
from slc.graphs.sessions import ask

PAPER = {"reflection_style": "per-concept", "recheck_absent": False, "reflection_rounds": 0, "report_style": "paper"}
CATEGORIES = {"bo": "dog", "mug": "mug", "kiki": "cat", "star": "star", "tee": "shirt"}


def _text(msg) -> str:
    c = msg.content
    return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if isinstance(p, dict))


def questions(messages) -> dict[str, str]:
    """The two questions of a paper reflection call, read back from its fenced JSON."""
    m = re.search(r'\{\s*"q1":[^{}]*\}', _text(messages[-1]))
    assert m, _text(messages[-1])
    return json.loads(m.group(0))


def is_reflection(messages) -> bool:
    return '"q1"' in _text(messages[-1])


def answers(by_category: dict[str, tuple[str, str]] | None = None):
    """A reflection reply per the asked category (default yes, yes)."""

    def reply(messages) -> str:
        q = questions(messages)
        cat = next(c for c in CATEGORIES.values() if f"see {c} " in q["q1"])
        a1, a2 = (by_category or {}).get(cat, ("yes", "yes"))
        return f'Sure: {{"q1": "{a1}", "q2": "{a2}"}}'

    return reply


@pytest.fixture
def concepts(concept_factory):
    return {n: concept_factory(n, c) for n, c in CATEGORIES.items()}


@pytest.mark.parametrize("n_present", [1, 2, 3])
def test_one_call_per_present_claim_plus_the_answer(d, make_run, photo, concepts, n_present):
    """N present claims: N reflection calls + 1 answer call, counted by the graph; absent ones (even the
    one the question names) are never asked about. Ours (batched) costs 2 on the same turn."""
    names = list(CATEGORIES)
    present = names[:n_present]
    script = {(n, 0): ("present" if n in present else "absent") for n in names}
    memory = d.Memory(list(concepts.values()), image_neighbours=names)
    question = f"Is <{names[-1]}> in this photo?"  # names an absent concept: the paper never re-checks it
    large = d.Large([answers()] * n_present + [d.answer("Yes.")])
    g, ctx = make_run(memory, d.Detector(script), large, **PAPER)
    res = ask(g, question, photo, context=ctx)
    reflections = [c for c in large.calls if is_reflection(c)]
    asked = sorted(questions(c)["q1"].split(" ")[3] for c in reflections)
    assert asked == sorted(CATEGORIES[n] for n in present)
    assert len(large.calls) == n_present + 1 == res.large_vlm_calls
    assert [v.concept for v in res.verdicts] == present and all(v.verdict == "agree" for v in res.verdicts)
    assert {f.concept: f.present for f in res.final} == {n: ("true" if n in present else "false") for n in names}
    # the same turn, our batched reflection: one verify call (present claims + the named absent one) + answer
    ours = d.Large([d.verdicts({}), d.answer("Yes.")])
    g2, ctx2 = make_run(memory, d.Detector(script), ours)
    res2 = ask(g2, question, photo, context=ctx2)
    assert res2.large_vlm_calls == 2 == len(ours.calls)
    assert sorted(d.claim_ids(ours.calls[0]).values()) == sorted([*present, names[-1]])


def test_two_no_rule_and_one_no_clears_that_location(d, make_run, photo, concepts):
    script = {("bo", 0): "present", ("mug", 0): "present", ("kiki", 0): "present", ("star", 0): "present"}
    large = d.Large([answers({"dog": ("no", "no"), "mug": ("no", "yes"), "cat": ("yes", "no")})] * 4
                    + [d.answer("Only some.")])
    memory = d.Memory([concepts[n] for n in ("bo", "mug", "kiki", "star")], image_neighbours=["bo", "mug", "kiki", "star"])
    g, ctx = make_run(memory, d.Detector(script), large, **PAPER)
    res = ask(g, "Who is here?", photo, context=ctx)
    final = {f.concept: f for f in res.final}
    assert (final["bo"].present, final["bo"].verified) == ("false", True)  # both no: absent
    assert (final["mug"].present, final["mug"].location_absolute, final["mug"].location_relative) == (
        "true", None, "next to the sofa")  # q1 (absolute) no: that location cleared
    assert (final["kiki"].present, final["kiki"].location_absolute, final["kiki"].location_relative) == (
        "true", "bottom left", None)
    assert (final["star"].present, final["star"].location_absolute) == ("true", "bottom left")
    # the questions are the paper's, verbatim, with the small model's locations
    first = questions(large.calls[0])
    assert first == {"q1": "Do you see dog at bottom left?", "q2": "Is dog next to the sofa?"}
    # one round, no loop-back: the refuted claim is not sent back to the small VLM
    assert "loop_bound_reached:round0" in res.flags and len(res.verdicts) == 4
    # the answer call got the paper's report lines
    system = large.calls[-1][0].content
    assert "<bo>: present=false" in system
    assert "<mug>: present=true; location-absolute=; location-relative=next to the sofa; category=mug" in system
    assert "<star>: present=true; location-absolute=bottom left; location-relative=next to the sofa; " \
           "category=star; attributes=fur: golden" in system
    assert res.answer.prompt_version == prompts.PAPER_PROMPT_VERSION


def test_no_loop_back_and_unknown_reads_as_absent(d, make_run, photo, concepts):
    det = d.Detector({("bo", 0): "present", ("mug", 0): "unknown"})
    large = d.Large([answers({"dog": ("no", "no")}), d.answer("No.")])
    g, ctx = make_run(d.Memory([concepts["bo"], concepts["mug"]], image_neighbours=["bo", "mug"]), det, large, **PAPER)
    res = ask(g, "Is <mug> here?", photo, context=ctx)
    assert len(det.calls) == 1  # one detection pass, never a second round
    assert res.large_vlm_calls == 2  # the unknown claim is not present: not reflected on
    assert {f.concept: f.present for f in res.final} == {"bo": "false", "mug": "false"}
    assert "undetermined: read as absent" in next(f.note for f in res.final if f.concept == "mug")


def test_malformed_reply_leaves_the_claim_unverified_without_a_retry(d, make_run, photo, concepts):
    large = d.Large(["I think so.", d.answer("Yes.")])
    g, ctx = make_run(d.Memory([concepts["bo"]], image_neighbours=["bo"]), d.Detector({("bo", 0): "present"}),
                      large, **PAPER)
    res = ask(g, "Is <bo> here?", photo, context=ctx)
    assert res.large_vlm_calls == 2 and [v.verdict for v in res.verdicts] == ["unverified"]
    assert "verifier_output_malformed:round0:bo" in res.flags
    (f,) = res.final
    assert (f.present, f.verified) == ("true", False)


def test_unreachable_large_vlm_degrades(d, make_run, photo, concepts):
    import openai
    import httpx

    down = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    large = d.Large([down])
    det = d.Detector({("bo", 0): "present", ("mug", 0): "present"})
    g, ctx = make_run(d.Memory([concepts["bo"], concepts["mug"]], image_neighbours=["bo", "mug"]), det, large, **PAPER)
    res = ask(g, "Who is here?", photo, context=ctx)
    assert res.degraded and len(large.calls) == 1  # stops at the first failure, the rest unverified
    assert [v.verdict for v in res.verdicts] == ["unverified", "unverified"]


def test_per_concept_style_with_recheck_and_loop_back(d, make_run, photo, concepts):
    """The options compose: per-concept questions, re-checking the named absent concept, one loop-back."""
    det = d.Detector({("bo", 0): "absent", ("mug", 0): "present", ("bo", 1): "present", ("mug", 1): "present"})
    first = answers({"mug": ("no", "no")})  # round 0: <bo> (absent, named) is seen, <mug> is not
    large = d.Large([first, first, answers(), answers(), d.answer("Yes.")])
    memory = d.Memory([concepts["bo"], concepts["mug"]], image_neighbours=["bo", "mug"])
    g, ctx = make_run(memory, det, large, reflection_style="per-concept", reflection_rounds=1)
    res = ask(g, "Is <bo> here?", photo, context=ctx)
    assert res.large_vlm_calls == 5 == len(large.calls)
    assert questions(large.calls[0]) == {"q1": "Do you see dog in the image?", "q2": "Is dog in the image?"}
    assert [(v.concept, v.round, v.verdict) for v in res.verdicts] == [
        ("bo", 0, "disagree"), ("mug", 0, "disagree"), ("bo", 1, "agree"), ("mug", 1, "agree")]
    assert [sorted(q.name for q in qs) for _, qs in det.calls] == [["bo", "mug"], ["bo", "mug"]]
    assert {f.concept: f.present for f in res.final} == {"bo": "true", "mug": "true"}
