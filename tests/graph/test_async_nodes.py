"""The async nodes: ``aask`` (ainvoke) gives the same turn as ``ask`` (invoke), ``invoke`` needs no event
loop of its own (it also runs where the caller's thread has one), and the query photo is ingested by the
graph itself from every form a caller may send (path, stored sha256, bytes/PIL as a data URL).

Large VLM: LangChain fake chat model; small VLM: scripted detector (TEST DOUBLES, see conftest.py).
"""

from __future__ import annotations

import asyncio
import io

import pytest

from slc.agent.errors import InvalidImageError
from slc.graphs.sessions import aask, ask


def _script(d):
    return d.Detector({("bo", 0): "present"}), d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes, <bo>.", ["bo"])])


@pytest.fixture
def bo(concept_factory):
    return concept_factory("bo", "dog")


def test_aask_gives_the_turn_ask_gives(d, make_run, photo, bo):
    det, large = _script(d)
    g, ctx = make_run(d.Memory([bo], image_neighbours=["bo"]), det, large)
    sync = ask(g, "Is <bo> here?", photo, context=ctx)
    det2, large2 = _script(d)
    g2, _ = make_run(d.Memory([bo], image_neighbours=["bo"]), det2, large2)
    res = asyncio.run(aask(g2, "Is <bo> here?", photo, context=ctx))
    assert (res.answer, res.final, res.verdicts, res.large_vlm_calls, res.image) == (
        sync.answer, sync.final, sync.verdicts, sync.large_vlm_calls, sync.image)
    assert [r for r, _ in det2.calls] == [0] and len(large2.calls) == 2


def test_sync_invoke_inside_a_running_event_loop(d, make_run, photo, bo):
    det, large = _script(d)
    g, ctx = make_run(d.Memory([bo], image_neighbours=["bo"]), det, large)

    async def caller():  # e.g. a notebook cell calling the sync API
        return ask(g, "Is <bo> here?", photo, context=ctx)

    assert asyncio.run(caller()).answer.text == "Yes, <bo>."


@pytest.mark.parametrize("form", ["pil", "bytes"])
def test_photo_as_bytes_or_pil_is_stored_and_only_its_hash_kept(d, make_run, store, bo, form):
    img = d.make_image(5, (80, 60))
    det, large = _script(d)
    g, ctx = make_run(d.Memory([bo], image_neighbours=["bo"]), det, large)
    if form == "bytes":
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        img = buf.getvalue()
    res = ask(g, "Is <bo> here?", img, context=ctx)
    assert store.exists(res.image) and res.final[0].present == "true"
    assert det.calls and store.open(res.image).size == (80, 60)


def test_invalid_photo_raises_out_of_the_graph(d, make_run, tmp_path, bo):
    g, ctx = make_run(d.Memory([bo]), d.Detector(), d.Large([]))
    bad = tmp_path / "not-a-photo.png"
    bad.write_text("hello")
    with pytest.raises(InvalidImageError, match="not-a-photo.png"):
        ask(g, "Is <bo> here?", str(bad), context=ctx)
    with pytest.raises(InvalidImageError, match="base64"):
        g.invoke({"question": "Is <bo> here?", "image": "data:image/png;base64,@@not base64@@"})
    with pytest.raises(InvalidImageError):
        asyncio.run(aask(g, "Is <bo> here?", b"garbage", context=ctx))
