"""The benchmark runner: every mode on the same items, resumable by configuration, concurrent under a rate limit.

Why JSONL appended per item: a crash at item 900 must continue at item 901, so each finished item is
written (and flushed) the moment it completes, keyed by (mode, item id, fingerprint); a rerun reads the file
and skips what the SAME configuration already answered (:mod:`slc.evals.fingerprint`). Rows of another
configuration stay in the file (switching back reuses them) and never reach the report of this one. A
half-written last line (killed mid-write) is ignored and the item redone.
Why a token bucket: API models throttle by requests per second; threads give concurrency, the bucket keeps
the request rate under the limit whatever the thread count.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from slc.agent.errors import SLCError
from slc.evals.fingerprint import Config, config_changes, describe, fingerprint
from slc.evals.items import ChoiceItem, Item, LoadedBenchmark
from slc.evals.metrics import shuffle_options
from slc.evals.predictors import Prediction, Predictor, Usage
from slc.evals.scoring import score_reply

#: Why an item was answered again although the file had a row for it.
CHANGED, NO_FINGERPRINT, FAILED = "configuration changed", "no fingerprint recorded", "failed last time"


class NothingToScoreError(SLCError, FileNotFoundError):
    """A run would score no item (every image missing under --root): the message names the path problem."""


class RunConfig(BaseModel):
    out_dir: Path
    concurrency: int = Field(default=1, ge=1, description="Items answered at once (threads).")
    rate_per_s: float | None = Field(default=None, gt=0, description="Max predictor calls started per second.")
    burst: int = Field(default=1, ge=1, description="Calls the rate limiter lets through at once.")
    limit: int | None = Field(default=None, ge=1, description="Only the first N items (same N for every mode).")
    shuffled: bool = Field(default=True, description="Also run multiple-choice items with options shuffled.")
    seed: int = 0
    skip_missing_images: bool = Field(default=True, description="Skip items whose images are missing (reported).")
    on_error: Literal["raise", "record"] = Field(
        default="raise", description="raise: stop the run (a rerun resumes); record: keep the error, go on "
        "(recorded errors are retried by the next run).")
    progress: bool = True


class ResultRow(BaseModel):
    """One answered item of one mode: what was asked, replied, parsed and scored, what it cost, and the
    configuration that produced it (``config``, hashed into ``fingerprint``)."""

    benchmark: str
    mode: str
    item_id: str
    variant: Literal["original", "shuffled"]
    task: str
    reply: str | None = None
    parsed: str | bool | None = None
    correct: bool | None = None
    score: float | None = None
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str | None = Field(default=None, description="Hash of ``config``; None in rows of older files.")
    config: Config | None = Field(default=None, description="What produced the row (models, prompts, settings).")


class TokenBucket:
    """Thread-safe token bucket: ``acquire`` blocks until a token is available (``rate`` tokens per second).

    ``clock`` and ``sleep`` are injectable so the limiter can be checked on a clock that is not the wall's.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock, self.sleep = clock, sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1 - 1e-9:  # float sums of elapsed time fall a hair short of a whole token
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                wait_s = (1 - self.tokens) / self.rate
            self.sleep(wait_s)


def items_with_variants(items: Sequence[Item], shuffled: bool, seed: int) -> list[tuple[str, Item]]:
    out: list[tuple[str, Item]] = [("original", it) for it in items]
    if shuffled:
        out += [("shuffled", shuffle_options(it, seed)) for it in items if isinstance(it, ChoiceItem)]
    return out


def results_path(out_dir: Path, benchmark: str) -> Path:
    return Path(out_dir) / benchmark / "results.jsonl"


def read_results(path: Path) -> tuple[list[ResultRow], int]:
    """All complete rows of a results file (last row wins per mode, item and fingerprint) and the number of
    unreadable lines."""
    rows: dict[tuple[str, str, str | None], ResultRow] = {}
    bad = 0
    if not path.exists():
        return [], 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = ResultRow.model_validate_json(line)
            except ValueError:
                bad += 1
                continue
            rows[(row.mode, row.item_id, row.fingerprint)] = row
    return list(rows.values()), bad


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) != b"\n"


class RunResult(BaseModel):
    benchmark: str
    results_file: Path
    ran: dict[str, int] = Field(default_factory=dict, description="Items answered in this run, per mode.")
    reused: dict[str, int] = Field(default_factory=dict, description="Items whose row of the same configuration "
                                   "was reused, per mode.")
    redone: dict[str, dict[str, int]] = Field(default_factory=dict, description="Items the file had rows for that "
                                              "were answered again, per mode and reason.")
    changes: dict[str, list[str]] = Field(default_factory=dict, description="Per mode, what differs between the "
                                          "configuration of redone rows and the current one.")
    fingerprints: dict[str, str] = Field(default_factory=dict, description="The current fingerprint per mode.")
    warnings: list[str] = Field(default_factory=list)
    skipped_missing_images: int = 0
    unreadable_lines: int = 0
    rows: list[ResultRow] = Field(default_factory=list, description="The rows of the current configurations.")

    def summary(self) -> str:
        """One line per mode: reused, answered, and why rows the file had were redone."""
        lines = []
        for mode, n in self.ran.items():
            line = f"{mode}: {self.reused.get(mode, 0)} reused, {n} answered"
            why = self.redone.get(mode) or {}
            parts = []
            for reason, k in why.items():
                changed = self.changes.get(mode, [])
                detail = f": {', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}" if reason == CHANGED \
                    and changed else ""
                parts.append(f"{reason}{detail}" if len(why) == 1 else f"{k} {reason}{detail}")
            if parts:
                line += f" ({sum(why.values())} redone: {'; '.join(parts)})"
            lines.append(line)
        return "\n".join(lines + [f"note: {w}" for w in self.warnings])


def scorable_items(loaded: LoadedBenchmark, config: RunConfig) -> list[Item]:
    """The items the run answers; NothingToScoreError when a root was given and no image is under it."""
    problem = loaded.path_problem() if config.skip_missing_images else None
    if problem:
        raise NothingToScoreError(problem)
    items = loaded.available() if config.skip_missing_images else list(loaded.items)
    return items[: config.limit] if config.limit is not None else items


def run_benchmark(loaded: LoadedBenchmark, predictors: Sequence[Predictor], config: RunConfig, *,
                  bucket: TokenBucket | None = None) -> RunResult:
    """Answer every item with every predictor, appending each result as it completes; reuse what the same
    configuration already answered. ``bucket`` overrides the rate limiter built from ``config``."""
    benchmark = loaded.report.benchmark
    items = scorable_items(loaded, config)
    work = items_with_variants(items, config.shuffled, config.seed)
    path = results_path(config.out_dir, benchmark)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing, bad = read_results(path)
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"two modes share a name: {names}")
    result = RunResult(benchmark=benchmark, results_file=path, unreadable_lines=bad,
                       skipped_missing_images=len(loaded.items) - len(loaded.available())
                       if config.skip_missing_images else 0)
    if bucket is None and config.rate_per_s:
        bucket = TokenBucket(config.rate_per_s, config.burst)
    write_lock = threading.Lock()
    current: dict[str, str | None] = {}

    with path.open("a", encoding="utf-8") as fh:
        if _ends_mid_line(path):
            fh.write("\n")  # a line cut by a crash must not swallow the next row
        for predictor in predictors:
            mode = predictor.name
            cfg = describe(predictor)
            fp = fingerprint(cfg) if cfg is not None else None
            current[mode] = fp
            if fp is not None:
                result.fingerprints[mode] = fp
            else:
                result.warnings.append(f"{mode} does not describe its configuration (no describe()): its rows are "
                                       "reused by mode name only")
            todo = _plan(mode, fp, cfg, work, existing, result)

            def one(variant: str, item: Item, predictor: Predictor = predictor, cfg: Config | None = cfg,
                    fp: str | None = fp) -> None:
                if bucket is not None:
                    bucket.acquire()
                start = time.perf_counter()
                try:
                    pred: Prediction = predictor(item)
                    error = None
                except Exception as exc:  # noqa: BLE001 - recorded or re-raised per config.on_error
                    if config.on_error == "raise":
                        raise
                    pred, error = Prediction(reply=None), f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - start
                usage = pred.usage if pred.usage.wall_s else pred.usage.model_copy(update={"wall_s": elapsed})
                parsed, correct, score = score_reply(item, pred.reply) if error is None else (None, False, 0.0)
                row = ResultRow(benchmark=benchmark, mode=predictor.name, item_id=item.id, variant=variant,
                                task=item.task, reply=pred.reply, parsed=parsed, correct=correct, score=score,
                                usage=usage, error=error, meta=pred.meta, fingerprint=fp, config=cfg)
                with write_lock:
                    fh.write(row.model_dump_json() + "\n")
                    fh.flush()
                    result.ran[predictor.name] += 1
                    if bar is not None:
                        bar.update(1)

            bar = None
            if config.progress and todo:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), desc=f"{benchmark} / {mode}", unit="item", leave=False)
            try:
                _execute(one, todo, config.concurrency)
            finally:
                if bar is not None:
                    bar.close()
    rows, _ = read_results(path)
    result.rows = [r for r in rows if r.mode in current and r.fingerprint == current[r.mode]]
    return result


def _plan(mode: str, fp: str | None, cfg: Config | None, work: list[tuple[str, Item]], existing: list[ResultRow],
          result: RunResult) -> list[tuple[str, Item]]:
    """The (variant, item) pairs ``mode`` must answer now; fills the run's reused/redone counts and changes."""
    mine = [r for r in existing if r.mode == mode]
    done = {r.item_id for r in mine if r.fingerprint == fp and r.error is None}
    failed = {r.item_id for r in mine if r.fingerprint == fp and r.error is not None}
    other = {r.item_id: r for r in mine if r.fingerprint != fp}
    todo = [(v, it) for v, it in work if it.id not in done]
    reasons: Counter[str] = Counter()
    old_configs: dict[str, Config | None] = {}
    for _, it in todo:
        if it.id in failed:
            reasons[FAILED] += 1
        elif it.id in other:
            row = other[it.id]
            reasons[CHANGED if row.fingerprint is not None else NO_FINGERPRINT] += 1
            if row.fingerprint is not None:
                old_configs.setdefault(row.fingerprint, row.config)
    result.ran[mode] = 0
    result.reused[mode] = len(work) - len(todo)
    result.redone[mode] = dict(reasons)
    changes: list[str] = []
    for old in old_configs.values():
        changes += [c for c in config_changes(old, cfg) if c not in changes]
    if changes:
        result.changes[mode] = changes
    return todo


def _execute(one: Callable[[str, Item], None], todo: list[tuple[str, Item]], concurrency: int) -> None:
    if concurrency == 1:
        for variant, item in todo:
            one(variant, item)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(one, v, it) for v, it in todo]
        finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in finished:
            f.result()


__all__ = ["CHANGED", "FAILED", "NO_FINGERPRINT", "NothingToScoreError", "ResultRow", "RunConfig", "RunResult",
           "TokenBucket", "items_with_variants", "read_results", "results_path", "run_benchmark", "scorable_items"]
