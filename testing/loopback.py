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


class ControlServer(_Server):
    """Loopback /v1/chat/completions whose behaviour is switched per request: ok | 500 | sleep | reply."""

    def __init__(self, reply: str) -> None:
        self.mode = "ok"
        self.reply = reply
        self.mode_reply = reply
        self.sleep_s = 5.0
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 - /v1/models for the endpoint check
                self._send(200, {"object": "list", "data": [{"id": "control", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self._body() or b"{}")
                server.requests.append(body)
                if server.mode == "500":
                    return self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
                if server.mode == "sleep":
                    time.sleep(server.sleep_s)
                text = server.reply if server.mode in ("ok", "sleep") else server.mode_reply
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

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


__all__ = ["ControlServer", "LangSmithCapture"]
