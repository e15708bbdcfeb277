"""LangSmith traces captured by a loopback HTTP server standing in for the LangSmith API.

Large VLM: LangChain fake chat model; small VLM: scripted detector (TEST DOUBLES, see conftest.py).
Asserts the node runs arrive with names and metadata, that no image bytes arrive with redaction on, and
that they DO arrive with redaction off (so the redaction check can fail).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slc.graphs import tracing
from slc.graphs.sessions import ask


class _LangSmith(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def _reply(self, obj, code=200):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        # /info as the real API answers it (the client reads these limits in its background thread)
        info = {"version": "0.0.0-test", "batch_ingest_config": {
            "use_multipart_endpoint": True, "scale_up_qsize_trigger": 1000, "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4, "size_limit": 100, "size_limit_bytes": 20_971_520}}
        self._reply(info if self.path.startswith("/info") else {})

    def _read(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        enc = (self.headers.get("Content-Encoding") or "").lower()
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "zstd":
            import zstandard

            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        type(self).bodies.append((self.path, raw))

    def do_POST(self):  # noqa: N802
        self._read()
        self._reply({})

    def do_PATCH(self):  # noqa: N802
        self._read()
        self._reply({})

    def log_message(self, *a):
        pass


@pytest.fixture
def langsmith(monkeypatch):
    _LangSmith.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _LangSmith)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "true")  # conftest set it false; langsmith reads both
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_PROJECT", "slc-test")
    from langsmith import utils as ls_utils

    ls_utils.get_env_var.cache_clear()  # langsmith caches env lookups; conftest set TRACING=false earlier
    tracing.reset_clients()
    yield _LangSmith
    tracing.reset_clients()
    monkeypatch.undo()
    ls_utils.get_env_var.cache_clear()
    srv.shutdown()
    srv.server_close()


def _run(d, make_run, photo, concept_factory, redact: bool):
    bo = concept_factory("bo", "dog")
    large = d.Large([d.verdicts({"bo": "agree"}), d.answer("Yes, <bo>.", ["bo"])])
    graph, ctx = make_run(d.Memory([bo], image_neighbours=["bo"]), d.Detector({("bo", 0): "present"}), large,
                          redact_images=redact, tenant="alice")
    res = ask(graph, "Is <bo> here?", photo, thread_id="trace-thread", context=ctx)
    tracing.langsmith_client(redact).flush()
    # the exact base64 payload the large VLM received (a data URL in the verify call)
    url = next(p["image_url"]["url"] for p in large.calls[0][-1].content if p.get("type") == "image_url")
    return res, url.split(",", 1)[1]


def _all(ls) -> bytes:
    return b"\n".join(body for _, body in ls.bodies)


def test_node_runs_arrive_with_names_and_metadata_and_no_image(d, make_run, photo, concept_factory, langsmith):
    res, b64 = _run(d, make_run, photo, concept_factory, redact=True)
    assert res.answer.text == "Yes, <bo>."
    paths = {p for p, _ in langsmith.bodies}
    assert any(p.startswith("/runs/multipart") or p.startswith("/runs/batch") for p in paths), paths
    blob = _all(langsmith)
    for name in (b'"slc"', b'"recall"', b'"personalize"', b'"reflect"', b'"reason"', b'"reflect.verify"',
                 b'"reason.answer"', b'"small_vlm.detect"'):
        assert name in blob, name
    assert b"trace-thread" in blob and b"alice" in blob and b'"concepts"' in blob
    assert b64[:120].encode() not in blob and b64[-120:].encode() not in blob
    assert tracing.PLACEHOLDER.encode() in blob


def test_images_do_arrive_when_redaction_is_off(d, make_run, photo, concept_factory, langsmith):
    _, b64 = _run(d, make_run, photo, concept_factory, redact=False)
    blob = _all(langsmith)
    assert b64[:120].encode() in blob  # proves the redaction test above can fail


def test_a_photo_sent_as_a_data_url_stays_out_of_traces(d, make_run, concept_factory, langsmith):
    """A remote client sends the photo as a data URL: the graph stores it before its run is traced."""
    bo = concept_factory("bo", "dog")
    graph, ctx = make_run(d.Memory([bo]), d.Detector(), d.Large([d.answer("A room.")]), tenant="alice")
    buf = io.BytesIO()
    d.make_image(9, (80, 60)).save(buf, format="PNG")
    payload = base64.b64encode(buf.getvalue()).decode("ascii")
    res = ask(graph, "What is here?", "data:image/png;base64," + payload, thread_id="url-thread", context=ctx)
    tracing.langsmith_client(True).flush()
    blob = _all(langsmith)
    assert b"url-thread" in blob and payload[:120].encode() not in blob and payload[-120:].encode() not in blob
    assert res.image.encode() in blob  # the photo is named by its hash


def test_redact_replaces_data_urls_and_blobs():
    data = {"messages": [[{"content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + "A" * 500}},
                                       {"type": "text", "text": "keep me"}]}]], "raw": "QUJD" * 100, "n": 3}
    out = tracing.redact(data)
    part = out["messages"][0][0]["content"]
    assert part[0]["image_url"]["url"] == tracing.PLACEHOLDER and part[1]["text"] == "keep me"
    assert out["raw"] == tracing.PLACEHOLDER and out["n"] == 3
