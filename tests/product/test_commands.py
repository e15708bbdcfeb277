"""Each CLI command on the happy path, over real HTTP: `transformers serve` on loopback serves the
demo's protocol model (a real tiny checkpoint whose reply is constant: verdict "uncertain" on c1, so the
reflection loop is seen to loop back), the small VLM is the real tiny Idefics3, memory the real Chroma.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(product_models):
    from slc.agent.large_vlm import serve_local

    with serve_local(product_models.protocol) as url:
        yield url


@pytest.fixture
def large_env(env, served, monkeypatch):
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_LARGE__BASE_URL", served)
    monkeypatch.setenv("SLC_LARGE__MODEL", str(env.models.protocol))
    monkeypatch.setenv("SLC_LARGE__MAX_TOKENS", "16")
    get_settings.cache_clear()
    return env


def test_ask_json_has_answer_detections_and_both_reflection_rounds(run_cli, large_env, memory_with_concepts):
    r = run_cli("ask", str(large_env.photo), "Is <c001> in this photo?", "--json", "--thread", "t1")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["thread_id"] == "t1" and out["answer"]["text"].startswith("Demo model")
    assert {d["concept"] for d in out["detections"]} >= {"c001"}
    rounds = sorted({v["round"] for v in out["verdicts"] if v["concept"] == "c001"})
    assert rounds == [0, 1]  # loop-back: the asked concept was re-checked in round 1
    assert "loop_bound_reached:round1" in out["flags"]
    assert out["large_vlm_calls"] == 3 and not out["degraded"]


def test_ask_tables(run_cli, large_env, memory_with_concepts):
    r = run_cli("ask", str(large_env.photo), "Is <c000> in this photo?")
    assert r.exit_code == 0, r.output
    for heading in ("small VLM detections", "large VLM verdicts", "report the answer relied on", "answer", "session:"):
        assert heading in r.stdout


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "CMYK", "tiny"])
def test_ask_odd_images(run_cli, large_env, memory_with_concepts, mode):
    from PIL import Image

    src = large_env.images["c000"][1][0]
    path = large_env.tmp / f"odd-{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    if mode == "tiny":
        img = src.resize((1, 1))
    elif mode == "I;16":
        img = Image.fromarray((__import__("numpy").asarray(src.convert("L")).astype("uint16") * 257))
    else:
        img = src.convert(mode)
    img.save(path)
    r = run_cli("ask", str(path), "Is <c000> here?", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["answer"]["text"]


def test_chat_piped_and_resumed(run_cli, large_env, memory_with_concepts):
    photo = large_env.photo
    script = f"@{photo} Is <c001> in this photo?\n/image {large_env.tmp}/nope.png\nWhat does <c000> look like?\n/exit\n"
    r = run_cli("chat", "--thread", "s1", input=script)
    assert r.exit_code == 0, r.output
    assert "session s1: new" in r.stdout
    assert "nope.png" in r.stdout and "file not found" in r.stdout  # a bad photo does not end the session
    assert r.stdout.count("Demo model") == 2
    r2 = run_cli("chat", "--thread", "s1", input="And <c001>?\n")  # EOF ends it too
    assert r2.exit_code == 0, r2.output
    assert "resumed, 4 earlier message(s)" in r2.stdout and "Demo model" in r2.stdout


def test_scan_with_a_broken_photo(run_cli, large_env, memory_with_concepts):
    folder = large_env.tmp / "library"
    folder.mkdir()
    for i, img in enumerate(large_env.images["c000"][1] + large_env.images["c001"][1]):
        img.save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    r = run_cli("scan", str(folder), "--concept", "c000", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 5
    broken = [x for x in rows if x["image"].endswith("broken.jpg")][0]
    assert broken["status"] == "unknown" and broken["error"]
    # the photos that load are scored (the random tiny model's status may be "unknown", but never an error)
    assert all(x["error"] is None and 0.0 <= x["confidence"] <= 1.0 for x in rows if x is not broken)
    r = run_cli("scan", str(folder), "--concept", "c000")
    assert r.exit_code == 0 and "1 unreadable" in r.stdout
