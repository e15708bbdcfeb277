"""LangGraph Server (issue 20, case 6): the tenant is the authenticated caller, threads are filtered by owner.

The real thing: `langgraph dev` (langgraph-cli[inmem]) serving this repository's langgraph.json (the
module-level graph and graphs/auth.py) on a free loopback port, driven by the official `langgraph_sdk`
client with two users' tokens. Tenant "a" holds concepts c000/c001 (registered before the server starts);
"b" holds none. Real memory, small VLM and photo store inside the server; the large VLM is the loopback
ControlServer.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from slc.agent.processes import console_script

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"a": "token-of-a", "b": "token-of-b"}


@pytest.fixture
def server(env, concepts, tmp_path):
    from slc.testing.langgraph_server import langgraph_dev, server_env

    if console_script("langgraph") is None:
        pytest.skip("the `langgraph` CLI is not installed: pip install 'langgraph-cli[inmem]' (the dev extra)")
    with langgraph_dev(ROOT, tmp_path / "server", server_env(SLC_AUTH__TOKENS=json.dumps(TOKENS))) as dev:
        yield dev.url


def _client(url: str, token: str | None = None, **headers: str):
    from langgraph_sdk import get_sync_client

    if token:
        headers["Authorization"] = f"Bearer {token}"
    return get_sync_client(url=url, headers=headers)


def _status(call) -> int:
    with pytest.raises(httpx.HTTPStatusError) as err:
        call()
    return err.value.response.status_code


def test_each_user_sees_only_its_own_concepts_and_threads(server, env):
    photo = "data:image/png;base64," + base64.b64encode(env.photo.read_bytes()).decode()
    question = {"question": "Is <c000> in this photo?", "image": photo}
    a, b = _client(server, TOKENS["a"]), _client(server, TOKENS["b"])

    # no token, a wrong token, the Studio header without a token: refused
    assert _status(lambda: _client(server).threads.search()) == 401
    assert _status(lambda: _client(server, "not-a-token").threads.search()) == 401
    assert _status(lambda: _client(server, **{"x-auth-scheme": "langsmith"}).threads.search()) == 401

    # a's run uses a's concepts
    ta = a.threads.create()["thread_id"]
    out = a.runs.wait(ta, "slc", input=question)
    assert "c000" in {c["concept"]["name"] for c in out["candidates"]}
    assert out["answer"]["text"]

    # b cannot see, read or run on a's thread
    assert [t["thread_id"] for t in b.threads.search()] == []
    assert _status(lambda: b.threads.get(ta)) == 404
    assert _status(lambda: b.threads.get_state(ta)) == 404
    assert _status(lambda: b.runs.wait(ta, "slc", input={"question": "What did I ask?"})) == 404

    # b cannot name a as its tenant, and its own runs see none of a's concepts or photos
    tb = b.threads.create()["thread_id"]
    assert _status(lambda: b.runs.wait(tb, "slc", input=question, context={"tenant": "a"})) == 403
    other = "data:image/png;base64," + base64.b64encode(env.elsewhere.read_bytes()).decode()
    out = b.runs.wait(tb, "slc", input={"question": "Is <c000> in this photo?", "image": other})
    assert out["candidates"] == []
    sha = a.threads.get_state(ta)["values"]["messages"][0]["additional_kwargs"]["image"]
    with pytest.raises(Exception, match="no stored photo"):  # a's photo hash means nothing in b's tenant
        b.runs.wait(tb, "slc", input={"question": "And this one?", "image": sha})

    assert [t["thread_id"] for t in a.threads.search()] == [ta]
    assert [t["thread_id"] for t in b.threads.search()] == [tb]
