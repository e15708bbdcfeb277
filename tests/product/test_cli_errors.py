"""Errors a person can act on: one line naming what is wrong, exit code 1, no traceback (unless -v).

Every error here is raised BEFORE any model generates (flags and inputs are checked first), so these
tests need no server; the memory ones use the real embedded memory.
"""

from __future__ import annotations

import pytest


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_no_image_given(run_cli, env):
    msg = _one_line_error(run_cli("ask", "Is <c000> in my photo?"))
    assert "No image given" in msg and "slc ask IMAGE" in msg


def test_no_question_given(run_cli, env):
    msg = _one_line_error(run_cli("ask", str(env.photo)))
    assert "No question given" in msg


@pytest.mark.parametrize("kind", ["missing", "empty", "not_an_image", "truncated", "huge"])
def test_unreadable_image_names_path_and_reason(run_cli, env, kind):
    from PIL import Image

    path = env.tmp / f"{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_an_image":
        path.write_text("this is a text file, not a photo")
    elif kind == "truncated":
        data = env.photo.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "huge":  # 9000 x 9000 = 81 Mpx > the 64 Mpx guard; a 1-bit PNG of it is tiny on disk
        Image.new("1", (9000, 9000)).save(path)
    msg = _one_line_error(run_cli("ask", str(path), "Is <c000> here?"))
    assert str(path) in msg or path.name in msg
    reason = {"missing": "not found", "empty": "empty", "not_an_image": "not an image",
              "truncated": "truncated", "huge": "too large"}[kind]
    assert reason in msg.lower(), msg


def test_missing_api_key_names_the_variable(run_cli, env):
    msg = _one_line_error(run_cli("ask", str(env.photo), "Is <c000> here?", "--large-model", "openai:gpt-4o"))
    assert "OPENAI_API_KEY" in msg


def test_endpoint_down_names_the_url(run_cli, env, h):
    url = f"http://127.0.0.1:{h.free_port()}/v1"
    msg = _one_line_error(run_cli("ask", str(env.photo), "Is <c000> here?", "--base-url", url))
    assert url in msg and "down" in msg


@pytest.mark.parametrize("ref", ["/nonexistent/checkpoint", "someorg/no-such-vlm"])
def test_model_not_found_locally_and_no_hub(run_cli, env, control_server, ref):
    msg = _one_line_error(run_cli("ask", str(env.photo), "Is <c000> here?", "--base-url", control_server.url,
                                  "--small-model", ref))
    assert ref in msg and "Cannot load model" in msg


def test_unknown_concept_suggests_close_names(run_cli, env, memory_with_concepts):
    msg = _one_line_error(run_cli("scan", str(env.photo), "--concept", "c00"))
    assert "Unknown concept 'c00'" in msg and "c000" in msg and "c001" in msg


def test_concept_commands_share_the_handler(run_cli, env, memory_with_concepts):
    msg = _one_line_error(run_cli("concept", "show", "c0001"))
    assert "Did you mean" in msg and "c000" in msg


def test_verbose_shows_the_traceback(run_cli, env):
    result = run_cli("-v", "ask", str(env.photo), "Is <c000> here?", "--large-model", "openai:gpt-4o")
    assert result.exit_code == 1
    assert "Traceback" in result.output and "MissingAPIKeyError" in result.output


@pytest.mark.parametrize("tenant", [" ", "x" * 2000])
def test_a_blank_or_overlong_tenant_is_one_line(run_cli, env, tenant):
    msg = _one_line_error(run_cli("concept", "list", "--tenant", tenant))
    assert "Invalid tenant" in msg and "--tenant" in msg


def test_a_question_naming_tens_of_thousands_of_words_is_answered_by_recall(env, memory_with_concepts):
    # issue 15 case 6: > ~32k distinct words used to exceed SQLite's variable limit in the name lookup; a
    # deployment that raises max_question_chars that far still gets an answer
    from slc.memory.store import ConceptMemory

    question = " ".join(f"w{i}" for i in range(40_000)) + " <c000>"
    roomy = memory_with_concepts.settings.model_copy(update={"max_question_chars": len(question)})
    with ConceptMemory(roomy) as mem:
        assert [h.concept.name for h in mem.recall(text=question)] == ["c000"]


def _at_and_over(limit: int) -> tuple[str, str]:
    """A question of exactly ``limit`` characters naming <c000>, and one a character longer."""
    at = ("Is <c000> here? " + " ".join(f"w{i}" for i in range(limit)))[:limit]
    return at, at + "?"


def test_recall_tool_refuses_an_overlong_question_and_answers_one_at_the_limit(env, memory_with_concepts):
    from slc.tools import make_memory_tools  # the tool a host's LLM calls with any text

    limit = memory_with_concepts.settings.max_question_chars
    assert limit == 8000  # the documented default
    at, over = _at_and_over(limit)
    recall = next(t for t in make_memory_tools(memory=memory_with_concepts) if t.name == "recall_concepts")
    msg = recall.invoke({"type": "tool_call", "id": "r1", "name": "recall_concepts", "args": {"query": over}})
    assert msg.status == "error" and "Question too long: 8,001 characters, the limit is 8,000" in msg.content
    assert "SLC_MAX_QUESTION_CHARS" in msg.content and over[:100] not in msg.content  # not echoed
    assert "<c000>" in recall.invoke({"query": at})
    from slc.agent.errors import QuestionTooLongError

    with pytest.raises(QuestionTooLongError):  # the memory itself, whoever calls it
        memory_with_concepts.recall(text=over)


@pytest.fixture
def control_env(env, control_server, monkeypatch):
    """A full turn runs: the large VLM is ControlServer on loopback."""
    from slc.agent.settings import get_settings

    monkeypatch.setenv("SLC_LARGE__BASE_URL", control_server.url)
    monkeypatch.setenv("SLC_LARGE__MODEL", "control")
    monkeypatch.setenv("SLC_LARGE__MAX_RETRIES", "0")
    get_settings.cache_clear()
    return env


def _kept(settings, thread: str) -> tuple[list, list]:
    """What a turn may leave: the tenant's query photos and the thread's messages."""
    from slc.graphs.sessions import open_graph

    photos = [p for p in settings.query_images_dir.rglob("*") if p.is_file()] if settings.query_images_dir.exists() else []
    with open_graph(settings) as g:
        return photos, g.get_state({"configurable": {"thread_id": thread}}).values.get("messages", [])


def test_ask_refuses_an_overlong_question_in_one_line_and_stores_nothing(run_cli, control_env, control_server,
                                                                        memory_with_concepts):
    from slc.agent.settings import get_settings

    settings = get_settings()
    at, over = _at_and_over(settings.max_question_chars)
    msg = _one_line_error(run_cli("ask", str(control_env.photo), over, "--thread", "long"))
    assert "Question too long: 8,001 characters, the limit is 8,000" in msg and "SLC_MAX_QUESTION_CHARS" in msg
    assert control_server.requests == [] and _kept(settings, "long") == ([], [])
    r = run_cli("ask", str(control_env.photo), at, "--json", "--thread", "long")
    assert r.exit_code == 0, r.output
    photos, messages = _kept(settings, "long")
    assert len(photos) == 1 and messages[0].content == at  # the question at the limit, whole


def test_chat_prints_one_line_for_an_overlong_question_and_goes_on(run_cli, control_env, memory_with_concepts):
    from slc.agent.settings import get_settings

    at, over = _at_and_over(get_settings().max_question_chars)
    r = run_cli("chat", "--thread", "cl", input=f"{over}\n{at}\n")
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.stdout.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Question too long" in errors[0] and "SLC_MAX_QUESTION_CHARS" in errors[0]
    assert "Demo model" in r.stdout  # the question at the limit was answered
    again = run_cli("chat", "--thread", "cl", input="")
    assert "resumed, 2 earlier message(s)" in again.stdout  # only the answered turn was kept


def test_scan_of_a_folder_that_does_not_exist_fails(run_cli, env, memory_with_concepts):
    missing = env.tmp / "no-such-folder"
    msg = _one_line_error(run_cli("scan", str(missing), "--concept", "c000"))
    assert "No such file or folder" in msg and str(missing) in msg
