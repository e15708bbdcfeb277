"""Several real processes on one embedded memory: no lost registration, no duplicate, SIGKILL-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from slc.memory.store import ConceptMemory

from .conftest import noise_image, stored_files

WORKER = Path(__file__).with_name("_worker.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_concurrent_registrations_from_processes_lose_nothing(settings, tiny_clip_path, tmp_path, image_embedder, text_embedder):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), "add", str(tiny_clip_path), str(go), f"p{k}-", "5", str(k + 1)],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["shared"] for r in results) == 1  # the name race has exactly one winner
    mem = ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder)
    names = sorted(c.name for c in mem.list())
    assert names == sorted([f"p{k}-{i}" for k in range(2) for i in range(5)] + ["shared"])
    assert mem._imgs.count() == 2 * 5 * 2 + 1 and len(stored_files(settings)) == 21
    for k in range(2):  # every process's records are queryable from here
        hit = mem.recall_by_text(f"where is p{k}-4")[0]
        assert len(hit.concept.images) == 2 and all(Path(i.path).is_file() for i in hit.concept.images)


def test_sigkill_mid_registration_leaves_nothing_after_reopen(settings, tiny_clip_path, tmp_path, image_embedder, text_embedder):
    marker = tmp_path / "in-commit-window"
    p = subprocess.Popen([sys.executable, str(WORKER), "hang", str(tiny_clip_path), str(marker)], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not marker.exists():
            assert p.poll() is None, p.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "worker never reached the commit window"
            time.sleep(0.05)
        assert len(stored_files(settings)) == 3  # files were written before the kill
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    mem = ConceptMemory(settings, image_embedder=image_embedder, text_embedder=text_embedder)  # lock freed by the kill
    assert mem.list() == [] and mem._imgs.count() == 0 and stored_files(settings) == []
    assert not list((settings.data_dir / "memory-journal").rglob("*.json"))
    assert mem.add("doomed", [noise_image(42)]).name == "doomed"  # the name is free again
