"""Integration: `transformers serve` on a tiny Idefics3 checkpoint on loopback is the large VLM, reached
through ChatOpenAI over real HTTP; the small VLM is the real SmallVLM in-process; memory is the real
ConceptMemory on embedded Chroma; sessions are SQLite. Two turns of one chat session.

Nothing here is a test double. The tiny models are random, so their words mean nothing: the test checks
the plumbing (every call answered over HTTP, malformed verifier output handled, session history carried).
"""

from __future__ import annotations

import pytest

from slc.agent.large_vlm import build_large_vlm, serve_local
from slc.agent.settings import get_settings
from slc.graphs.services import ServiceFactory
from slc.graphs.sessions import ask, open_graph

pytestmark = pytest.mark.integration


def test_two_turn_session_over_transformers_serve(tiny_vlm_path, real_memory, tmp_path, d):
    from slc.agent.small_vlm import SmallVLM

    ckpt = tiny_vlm_path("idefics3")
    ref, photo = tmp_path / "bo.png", tmp_path / "photo.png"
    d.make_image(3).save(ref)
    d.make_image(3).save(photo)
    real_memory.add("bo", [ref], description="my golden retriever", category="dog")
    small = SmallVLM.from_pretrained(ckpt, device="cpu", dtype="float32", max_new_tokens=12)
    settings = get_settings().model_copy(update={"large": get_settings().large.model_copy(
        update={"model": str(ckpt), "max_tokens": 12, "max_retries": 0, "timeout_s": 60})})
    with serve_local(ckpt) as url:
        large = build_large_vlm(settings.large.model_copy(update={"base_url": url}))
        assert type(large).__name__ == "ChatOpenAI" and large.openai_api_base == url
        services = ServiceFactory(settings, memory=real_memory, small_vlm=small, large_vlm=large)
        with open_graph(services=services) as g:
            r1 = ask(g, "Is <bo> in this photo?", photo, thread_id="chat", settings=settings)
            r2 = ask(g, "What do you know about bo?", None, thread_id="chat", settings=settings)
            msgs = g.get_state({"configurable": {"thread_id": "chat"}}).values["messages"]
    # turn 1: bo recalled (named + same picture), detected by the real small VLM, verified over HTTP
    assert not r1.degraded and r1.answer.text
    assert [v.concept for v in r1.verdicts] == ["bo"]
    # a random model does not write the verdict JSON: one retry, then "unverified" and a flag, no crash
    assert "verifier_output_malformed:round0" in r1.flags, r1.flags
    assert r1.verdicts[0].verdict == "unverified" and r1.large_vlm_calls == 3  # verify, retry, answer
    assert "answer_unstructured" in r1.flags and not r1.answer.structured
    # turn 2: text-only, one call, with turn 1 in the history
    assert not r2.degraded and r2.large_vlm_calls == 1 and r2.answer.text
    assert len(msgs) == 4 and msgs[0].content == "Is <bo> in this photo?"
