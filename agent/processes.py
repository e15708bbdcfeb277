"""Local helper processes on loopback (`transformers serve`, `chroma run`): ports, health waits, shutdown.

Why one module: the demo, the tests and the stress benchmark all start such servers; each needs the same
free-port pick, the same "wait until healthy or the process died" loop and the same TERM-then-KILL stop.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from slc.agent.errors import SLCError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def console_script(name: str) -> str | None:
    """The console script ``name`` of this interpreter's environment (else on PATH), or None."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name)


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, *, what: str, poll_s: float = 0.2) -> None:
    """Return once GET ``url`` answers 200; raise SLCError when ``proc`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SLCError(f"{what} exited with code {proc.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SLCError(f"{what} did not answer at {url} in {timeout_s:.0f}s")
        time.sleep(poll_s)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def start_chroma(path: str | Path, port: int, host: str = "127.0.0.1", timeout_s: float = 60.0) -> subprocess.Popen:
    """``chroma run --path PATH --port PORT`` on loopback, returned once its heartbeat answers."""
    exe = console_script("chroma")
    if exe is None:
        raise SLCError("The `chroma` CLI is not installed (it comes with the chromadb package).")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", host, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://{host}:{port}/api/v2/heartbeat", proc, timeout_s, what="chroma run")
    except BaseException:
        stop_process(proc)
        raise
    return proc


@contextlib.contextmanager
def chroma_server(path: str | Path, port: int | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """A real Chroma server for the duration of the block; yields its URL."""
    port = port or free_port(host)
    proc = start_chroma(path, port, host)
    try:
        yield f"http://{host}:{port}"
    finally:
        stop_process(proc)
