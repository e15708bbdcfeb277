"""This project's graph under a real LangGraph Server: ``langgraph dev`` (langgraph-cli[inmem]) on loopback.

Why: what LangGraph Studio, Agent Chat UI and the ``langgraph_sdk`` client reach is the server process
``langgraph.json`` configures (the module-level graph, its auth), not the graph object; only that process
shows what its routes accept and what its log keeps. :func:`langgraph_dev` serves the repository's own
``langgraph.json`` (paths made absolute, so the server may run in any folder) on a free loopback port and
stops it (TERM, then KILL) on exit; the server's output stays readable through :class:`LangGraphDev`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from slc.agent.errors import SLCError
from slc.agent.processes import console_script, free_port, stop_process, wait_healthy


@dataclass
class LangGraphDev:
    """A running ``langgraph dev``: its base URL, and its output so far."""

    url: str
    _log: IO[bytes]

    def log(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


def served_config(project: Path) -> dict:
    """The project's ``langgraph.json`` with every path made absolute."""
    config = json.loads((project / "langgraph.json").read_text())
    config["graphs"] = {name: str(project / ref) for name, ref in config["graphs"].items()}
    if "auth" in config:
        config["auth"]["path"] = str(project / config["auth"]["path"])
    config["dependencies"] = [str(project)]
    return config


@contextlib.contextmanager
def langgraph_dev(project: Path, workdir: Path, env: dict[str, str], *, startup_timeout_s: float = 180) -> Iterator[LangGraphDev]:
    """Serve ``project``'s ``langgraph.json`` with ``langgraph dev`` from ``workdir`` (where the in-memory
    server keeps its files) with ``env`` as its whole environment. Raises SLCError with the server's
    output when it does not come up, or when the ``langgraph`` CLI is not installed."""
    exe = console_script("langgraph")
    if exe is None:
        raise SLCError("the `langgraph` CLI is not installed: pip install 'langgraph-cli[inmem]' (the dev extra)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "langgraph.json"
    config.write_text(json.dumps(served_config(project)))
    port = free_port()
    log = tempfile.TemporaryFile()  # a file, not a pipe: an undrained pipe would block the server
    proc = subprocess.Popen([exe, "dev", "--config", str(config), "--port", str(port), "--host", "127.0.0.1",
                             "--no-browser", "--no-reload"], cwd=workdir, env={**env, "PWD": str(workdir)},
                            stdout=log, stderr=subprocess.STDOUT)
    server = LangGraphDev(url=f"http://127.0.0.1:{port}", _log=log)
    try:
        try:
            wait_healthy(f"{server.url}/ok", proc, startup_timeout_s, what="langgraph dev")
        except SLCError as exc:
            raise SLCError(f"{exc}:\n{server.log()[-4000:]}") from None
        yield server
    finally:
        stop_process(proc)
        log.close()


def server_env(**slc: str) -> dict[str, str]:
    """The environment of a served graph: this process's, with tracing off and one torch thread, plus ``slc``."""
    return {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "OMP_NUM_THREADS": "1", **slc}


__all__ = ["LangGraphDev", "langgraph_dev", "served_config", "server_env"]
