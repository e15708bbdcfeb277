"""The large-VLM factory over real HTTP on loopback (no fake models here)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import HumanMessage
from PIL import Image

from slc.agent.errors import LargeVLMConfigError, LargeVLMUnavailableError, MissingAPIKeyError, SLCError
from slc.agent.large_vlm import build_large_vlm, call_large_vlm, free_port, image_data_url, parse_model_spec
from slc.agent.settings import Settings


def _settings(**large) -> Settings:
    return Settings(large=large)


def test_missing_provider_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        build_large_vlm(_settings(model="openai:gpt-4o"))
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):  # a bare name: langchain infers the provider
        build_large_vlm(_settings(model="gpt-4o-mini"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        build_large_vlm(_settings(model="anthropic:claude-sonnet-4-5"))


def test_spec_parsing_and_bad_spec():
    assert parse_model_spec("openai:gpt-4o") == ("openai", "gpt-4o")
    # a bare name's provider is inferred by init_chat_model when the model is built (no private langchain API)
    assert parse_model_spec("gpt-4o-mini") == (None, "gpt-4o-mini")
    with pytest.raises(SLCError, match="provider:model"):
        build_large_vlm(_settings(model="my-mystery-model"))


def test_openai_spec_with_key_builds_chatopenai(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    m = build_large_vlm(_settings(model="openai:gpt-4o", max_retries=4, timeout_s=7))
    assert type(m).__name__ == "ChatOpenAI" and m.model_name == "gpt-4o" and m.max_retries == 4 and m.request_timeout == 7


def test_local_without_base_url_says_how_to_serve():
    with pytest.raises(LargeVLMConfigError, match="transformers serve"):
        build_large_vlm(_settings(model="local"))


def test_unreachable_endpoint_names_the_url():
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    m = build_large_vlm(_settings(model="m", base_url=url, max_retries=0, timeout_s=5))
    t0 = time.monotonic()
    with pytest.raises(LargeVLMUnavailableError, match=f"127.0.0.1:{port}"):
        call_large_vlm(m, [HumanMessage("hi")])
    assert time.monotonic() - t0 < 5


class _Flaky(BaseHTTPRequestHandler):
    """OpenAI-compatible endpoint that answers 503 (or 429) ``fail`` times, then a completion."""

    fail = 2
    status = 503
    hits: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).hits.append(body)
        if len(type(self).hits) <= type(self).fail:
            self.send_response(type(self).status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "pong"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def flaky():
    _Flaky.hits = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("status", [503, 429])
def test_retries_5xx_and_429_with_backoff_then_succeeds(flaky, status):
    _Flaky.fail, _Flaky.status = 2, status
    url = f"http://127.0.0.1:{flaky.server_address[1]}/v1"
    m = build_large_vlm(_settings(model="served", base_url=url, max_retries=2, timeout_s=10))
    img = Image.new("RGB", (3000, 1500), (200, 10, 10))
    msg = HumanMessage(content=[{"type": "image_url", "image_url": {"url": image_data_url(img, 512)}},
                                {"type": "text", "text": "ping"}])
    assert call_large_vlm(m, [msg]).content == "pong"
    assert len(_Flaky.hits) == 3  # 2 failures + 1 success: the openai client's own retries
    part = _Flaky.hits[-1]["messages"][0]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_gives_up_after_max_retries_with_a_clear_error(flaky):
    _Flaky.fail, _Flaky.status = 10, 503
    url = f"http://127.0.0.1:{flaky.server_address[1]}/v1"
    m = build_large_vlm(_settings(model="served", base_url=url, max_retries=1, timeout_s=10))
    with pytest.raises(LargeVLMUnavailableError, match=f"{url}.*503"):
        call_large_vlm(m, [HumanMessage("ping")])
    assert len(_Flaky.hits) == 2


def test_image_data_url_is_resized_to_max_side():
    url = image_data_url(Image.new("RGB", (2000, 1000), (0, 128, 255)), 256)
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (256, 128) and img.format == "JPEG"
    small = image_data_url(Image.new("RGB", (100, 50)), 256)
    assert Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (100, 50)
