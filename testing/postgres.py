"""A throwaway local Postgres server (``initdb`` + ``pg_ctl``) for tests of Postgres sessions.

Why a real server: Postgres sessions (``settings.sessions_url``, the ``postgres`` extra) run LangGraph's
PostgresSaver over psycopg; only a real server shows that checkpoints, thread owners, erasure and the
async path work there. The server listens on a free loopback port with trust authentication, keeps its
files in a temporary folder and is stopped and deleted on exit. Postgres refuses to run as root, so under
root it runs as the ``postgres`` system user (Debian's packages create it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slc.agent.errors import SLCError
from slc.agent.processes import free_port


class PostgresUnavailableError(SLCError):
    """This machine cannot start a local Postgres server (the message says why)."""


def postgres_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else the newest ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3].split(".")[0]))
    return Path(versions[-1]).parent if versions else None


def _run_as() -> dict[str, Any]:
    """subprocess keywords that run the server as a user Postgres accepts (not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailableError("running as root and there is no `postgres` user to run the server as") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": {**os.environ, "HOME": user.pw_dir}}


@contextlib.contextmanager
def local_postgres(*, startup_timeout_s: int = 60) -> Iterator[str]:
    """Start a Postgres server on 127.0.0.1; yields its URL (``postgresql://slc@127.0.0.1:PORT/postgres``).

    Raises :class:`PostgresUnavailableError` when the binaries are missing or cannot be run here.
    """
    bindir = postgres_bin()
    if bindir is None:
        raise PostgresUnavailableError("initdb/pg_ctl are not installed (Debian: apt-get install postgresql)")
    as_user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="slc-postgres-"))
    if as_user:
        os.chown(root, as_user["user"], as_user["group"])
    data, log = root / "data", root / "server.log"
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"

    def run(*cmd: str) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=startup_timeout_s, **as_user)
        if done.returncode:
            tail = (done.stdout + done.stderr + (log.read_text() if log.is_file() else ""))[-3000:]
            raise PostgresUnavailableError(f"{Path(cmd[0]).name} failed ({done.returncode}):\n{tail}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "slc", "--auth=trust", "--no-sync", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", str(startup_timeout_s),
            "start")
        try:
            yield f"postgresql://slc@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=startup_timeout_s, **as_user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["PostgresUnavailableError", "local_postgres", "postgres_bin"]
