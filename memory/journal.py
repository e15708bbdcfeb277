"""The write lock and intent journal that make every concept-memory write all-or-nothing, crashes included.

Why: a registration writes image files, image records and last the concept record (the commit marker);
a process killed in between (even SIGKILL) must leave nothing a later reader sees or keeps forever.
- Writes run under a file lock (:meth:`IndexBackend.lock_path <slc.memory.index.IndexBackend.lock_path>`),
  so writers in several processes serialize: no lost update, no duplicate name.
- Each write first drops a small journal file (the records and image files it is about to create or
  remove) and deletes it when done. A crash leaves it behind; the next memory opened on the same data
  replays it under the lock, and the store's ``undo`` removes whatever no committed concept uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

#: How long a writer waits for another process's write before giving up.
LOCK_TIMEOUT_S = 120
#: ``undo(record_ids, shas)`` -> how many orphans it removed; called with the lock held.
Undo = Callable[[Sequence[str], Sequence[str]], int]


class WriteJournal:
    """One tenant's journal folder plus the lock its writers share.

    Cheap to make (a server opens one per tenant it serves): the lock file is only touched by a write, or by
    :meth:`if_idle` when a journal is left to replay."""

    def __init__(self, directory: Path, lock_path: Path) -> None:
        self.directory = directory
        self._lock_path = lock_path
        self._lock: FileLock | None = None

    @property
    def lock(self) -> FileLock:
        if self._lock is None:
            self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self._lock_path), timeout=LOCK_TIMEOUT_S)
        return self._lock

    def pending(self) -> bool:
        """Whether a journal is left behind (a crashed write, or one in progress in another process)."""
        try:
            with os.scandir(self.directory) as entries:
                return any(e.name.endswith((".json", ".tmp")) for e in entries)
        except FileNotFoundError:
            return False

    @contextlib.contextmanager
    def entry(self, record_ids: Iterable[str], shas: Iterable[str]) -> Iterator[None]:
        """Record what a write is about to touch; removed when the write finishes (or is rolled back)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4().hex}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"record_ids": list(record_ids), "shas": list(shas)}))
        os.replace(tmp, path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def if_idle(self) -> Iterator[bool]:
        """Hold the lock for the block if it is free right now (yields True); else yield False at once.

        Why not wait: a journal seen while holding the lock cannot belong to a live writer (writers keep
        the lock for the whole life of their journal), and when the lock is busy, reads stay correct
        meanwhile because uncommitted records belong to no concept record and are never returned."""
        try:
            self.lock.acquire(timeout=0)
        except TimeoutError:  # filelock.Timeout subclasses TimeoutError
            yield False
            return
        try:
            yield True
        finally:
            self.lock.release()

    def replay(self, undo: Undo) -> None:
        """Undo every write a crash left behind, then drop its journal; the caller holds the lock."""
        if not self.directory.is_dir():
            return
        for j in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(j.read_text())
            except (OSError, ValueError):
                j.unlink(missing_ok=True)
                continue
            n = undo(data.get("record_ids", []), data.get("shas", []))
            log.warning("Recovered from an interrupted memory write (%s): removed %d orphan(s)", j.name, n)
            j.unlink(missing_ok=True)
        for t in self.directory.glob("*.tmp"):
            t.unlink(missing_ok=True)


__all__ = ["LOCK_TIMEOUT_S", "Undo", "WriteJournal"]
