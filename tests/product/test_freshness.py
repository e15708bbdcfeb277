"""Cross-process freshness (issue 15, case 1): a process that is already running (a chat, a server, an agent)
finds by image a concept that ANOTHER process registered, at its next read, with no restart and no wait.

Real processes: the reader is this test's open ConceptMemory, queried once before the write (so its
in-process copy, memory/mirror.py, is loaded); the writer is the real `slc concept add` in a subprocess.
Both on the embedded store, and both against a `chroma run` server.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("store", ["embedded", "chroma-run"])
def test_a_running_process_sees_another_process_concept_by_image(env, h, monkeypatch, tmp_path, store):
    from slc.agent.processes import start_chroma, stop_process
    from slc.agent.settings import get_settings
    from slc.memory.store import ConceptMemory

    proc = None
    if store == "chroma-run":
        port = h.free_port()
        proc = start_chroma(tmp_path / "chroma-server", port)
        monkeypatch.setenv("SLC_CHROMA__URL", f"http://127.0.0.1:{port}")
    try:
        get_settings.cache_clear()
        wc, refs = env.images["c000"]
        files = []
        for i, ref in enumerate(refs):
            files.append(tmp_path / f"c000-{i}.png")
            ref.save(files[-1])
        reader = ConceptMemory(get_settings())
        reader.add("c001", env.images["c001"][1], description=env.images["c001"][0].description)
        assert [hit.concept.name for hit in reader.recall_by_image(str(files[0]))] != ["c000"]  # copy loaded
        r = subprocess.run([sys.executable, "-m", "slc.cli", "concept", "add", "c000", *map(str, files)],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        hits = reader.recall_by_image(str(files[0]))  # the very next read, same process, same object
        assert hits and hits[0].concept.name == "c000" and hits[0].score > 0.99, hits
        assert {c.name for c in reader.list()} == {"c000", "c001"}
        reader.close()
    finally:
        if proc is not None:
            stop_process(proc, timeout_s=15)
