"""Loopback HTTP stand-ins a test controls: an OpenAI-compatible chat endpoint and a LangSmith API.

Why real HTTP and not mocks: what must be checked is what actually crosses the wire (the request a large
VLM receives, the runs a LangSmith client posts), in the project's real clients' own formats.

- :class:`ControlServer`: ``/v1/chat/completions`` whose behaviour is switched per request (a fixed reply,
  HTTP 500, a hang, another reply) and which records every request body. Used for fault injection and to
  see what a large-VLM request carried (e.g. which chat history).
- :class:`LangSmithCapture`: answers the LangSmith API the way the ``langsmith`` client needs (``/info``,
  ``/runs/multipart``, ``/runs/batch``, ``/runs``) and keeps everything posted, decompressed, with the
  posted runs reassembled (:meth:`LangSmithCapture.runs`).
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server:
    """A threading HTTP server on a free loopback port, stopped by :meth:`close`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "_Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        enc = (self.headers.get("Content-Encoding") or "").lower()
        if enc == "gzip":
            return gzip.decompress(raw)
        if enc == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        return raw


#: ControlServer's fault modes: what the endpoint sends back instead of a chat completion.
FAULT_MODES = ("500", "400", "401", "404", "pinned", "truncated", "html", "nomessage", "trickle")


class ControlServer(_Server):
    """Loopback /v1/chat/completions whose behaviour is switched per request.

    ``mode``: "ok" (``reply``), "reply" (``mode_reply``), "sleep" (``sleep_s``, then ``reply``), or a fault:
    "500", "400", "401", "404" (an OpenAI-style JSON error), "pinned" (HTTP 400 as `transformers serve`
    answers a model it is not pinned to), "truncated" (HTTP 200, half a JSON body), "html" (HTTP 200, an HTML
    page), "nomessage" (a completion whose choice has no ``message``), "trickle" (a valid completion sent
    one byte every ``trickle_s`` seconds, until the mode changes). ``fail_next``: that many requests answer
    as ``fail_mode`` (default "500") first, whatever the mode. ``models``: what GET /v1/models lists (empty: an empty list). Every request body is recorded.
    """

    def __init__(self, reply: str) -> None:
        self.mode = "ok"
        self.reply = reply
        self.mode_reply = reply
        self.sleep_s = 5.0
        self.trickle_s = 1.0
        self.fail_next = 0
        self.fail_mode = "500"
        self.models: list[str] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - /v1/models for the endpoint check
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def _raw(self, code: int, ctype: str, data: bytes, *, length: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self._body() or b"{}")
                server.requests.append(body)
                mode = server.mode
                if server.fail_next > 0:
                    server.fail_next -= 1
                    mode = server.fail_mode
                if mode in ("500", "400", "401", "404"):
                    kind = {"500": "server_error", "400": "invalid_request_error", "401": "invalid_api_key",
                            "404": "not_found"}[mode]
                    return self._send(int(mode), {"error": {"message": f"injected {mode}", "type": kind}})
                if mode == "pinned":
                    return self._send(400, {"detail": f"Server is pinned to 'pinned-model'; requested '{body.get('model')}'."})
                if mode == "html":
                    return self._raw(200, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
                if mode == "sleep":
                    time.sleep(server.sleep_s)
                text = server.reply if mode in ("ok", "sleep", "trickle") else server.mode_reply
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "finish_reason": "stop", **({} if mode == "nomessage" else {"message": message})}
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                                   "choices": [choice],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                if mode == "truncated":
                    return self._raw(200, "application/json", data[: len(data) // 2])
                if mode == "trickle":
                    self._raw(200, "application/json", b"", length=len(data))
                    for i in range(len(data)):
                        if server.mode != "trickle":  # the test moved on: hang up
                            return
                        try:
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            return
                        time.sleep(server.trickle_s)
                    return
                self._raw(200, "application/json", data)

        super().__init__(Handler)
        self.url = f"{self.base}/v1"


#: What ``/info`` says, as the real API says it (the client reads these limits in its background thread).
_INFO = {"version": "0.0.0-test", "batch_ingest_config": {
    "use_multipart_endpoint": True, "scale_up_qsize_trigger": 1000, "scale_up_nthreads_limit": 16,
    "scale_down_nempty_trigger": 4, "size_limit": 100, "size_limit_bytes": 20_971_520}}


class LangSmithCapture(_Server):
    """A LangSmith API on loopback that records everything posted to it (point LANGSMITH_ENDPOINT here)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []  # (path, content type, decompressed body)
        self._lock = threading.Lock()
        capture = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802
                self._send(200, _INFO if self.path.startswith("/info") else {})

            def _record(self) -> None:
                body = self._body()
                with capture._lock:
                    capture.bodies.append((self.path, self.headers.get("Content-Type") or "", body))
                self._send(200, {})

            do_POST = _record  # noqa: N815
            do_PATCH = _record  # noqa: N815

        super().__init__(Handler)

    def clear(self) -> None:
        with self._lock:
            self.bodies.clear()

    def blob(self) -> bytes:
        """Every byte posted so far (decompressed), for "is X anywhere in what left the process"."""
        with self._lock:
            return b"\n".join(body for _, _, body in self.bodies)

    def runs(self) -> dict[str, dict[str, Any]]:
        """The posted runs by id: each run's create fields, updated by its patches, with inputs/outputs."""
        runs: dict[str, dict[str, Any]] = {}

        def merge(run_id: str, fields: dict[str, Any]) -> None:
            runs.setdefault(run_id, {}).update({k: v for k, v in fields.items() if v is not None})

        with self._lock:
            bodies = list(self.bodies)
        for path, ctype, body in bodies:
            if ctype.startswith("multipart/"):
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {ctype}\r\n\r\n".encode() + body)
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition") or ""
                    kind, _, rest = name.partition(".")
                    if kind not in ("post", "patch"):
                        continue
                    run_id, _, field = rest.partition(".")
                    value = json.loads(part.get_payload(decode=True) or b"null")
                    merge(run_id, {field: value} if field else value)
            elif path.startswith("/runs/batch"):
                obj = json.loads(body)
                for op in ("post", "patch"):
                    for run in obj.get(op) or []:
                        merge(str(run["id"]), run)
            elif path.startswith("/runs"):
                run = json.loads(body)
                merge(str(run.get("id") or path.rsplit("/", 1)[-1]), run)
        return runs


__all__ = ["FAULT_MODES", "ControlServer", "LangSmithCapture"]
