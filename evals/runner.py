"""The benchmark runner: every mode on the same items, resumable, concurrent under a rate limit.

Why JSONL appended per item: a crash at item 900 must continue at item 901, so each finished item is
written (and flushed) the moment it completes, keyed by (mode, item id); a rerun reads the file and skips
what is done. A half-written last line (killed mid-write) is ignored and the item redone.
Why a token bucket: API models throttle by requests per second; threads give concurrency, the bucket keeps
the request rate under the limit whatever the thread count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from slc.evals.datasets import CaptionItem, ChoiceItem, Item, LoadedBenchmark, OpenVQAItem, RecognitionItem
from slc.evals.metrics import char_bleu, concept_mentions, parse_option_letter, parse_yes_no, shuffle_options
from slc.evals.predictors import Prediction, Predictor, Usage


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
    """One answered item of one mode: what was asked, replied, parsed and scored, and what it cost."""

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


class TokenBucket:
    """Thread-safe token bucket: ``acquire`` blocks until a token is available (``rate`` tokens per second)."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait_s = (1 - self.tokens) / self.rate
            time.sleep(wait_s)


def score_reply(item: Item, reply: str | None) -> tuple[str | bool | None, bool | None, float | None]:
    """(parsed answer, correct, score) of one reply; captions are scored over the whole set, not here."""
    if isinstance(item, ChoiceItem):
        letter = parse_option_letter(reply, item.options)
        ok = letter == item.answer
        return letter, ok, float(ok)
    if isinstance(item, RecognitionItem):
        yn = parse_yes_no(reply)
        ok = yn is not None and yn == item.expected
        return yn, ok, float(ok)
    if isinstance(item, OpenVQAItem):
        return None, None, char_bleu(item.reference, reply or "")
    if isinstance(item, CaptionItem):
        named = sorted(concept_mentions(reply or "", item.concepts))
        return ",".join(named), None, None
    raise TypeError(type(item).__name__)


def items_with_variants(items: Sequence[Item], shuffled: bool, seed: int) -> list[tuple[str, Item]]:
    out: list[tuple[str, Item]] = [("original", it) for it in items]
    if shuffled:
        out += [("shuffled", shuffle_options(it, seed)) for it in items if isinstance(it, ChoiceItem)]
    return out


def results_path(out_dir: Path, benchmark: str) -> Path:
    return Path(out_dir) / benchmark / "results.jsonl"


def read_results(path: Path) -> tuple[list[ResultRow], int]:
    """All complete rows of a results file (last row wins per key) and the number of unreadable lines."""
    rows: dict[tuple[str, str], ResultRow] = {}
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
            rows[(row.mode, row.item_id)] = row
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
    skipped_done: dict[str, int] = Field(default_factory=dict, description="Items already in the file, per mode.")
    skipped_missing_images: int = 0
    unreadable_lines: int = 0
    rows: list[ResultRow] = Field(default_factory=list, description="All rows of the file for the run's modes.")


def run_benchmark(loaded: LoadedBenchmark, predictors: Sequence[Predictor], config: RunConfig) -> RunResult:
    """Answer every item with every predictor, appending each result as it completes; skip what is done."""
    benchmark = loaded.report.benchmark
    items = loaded.available() if config.skip_missing_images else list(loaded.items)
    skipped_missing = len(loaded.items) - len(items)
    if config.limit is not None:
        items = items[: config.limit]
    work = items_with_variants(items, config.shuffled, config.seed)
    path = results_path(config.out_dir, benchmark)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing, bad = read_results(path)
    done = {(r.mode, r.item_id) for r in existing if r.error is None}
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"two modes share a name: {names}")
    result = RunResult(benchmark=benchmark, results_file=path, skipped_missing_images=skipped_missing,
                       unreadable_lines=bad)
    bucket = TokenBucket(config.rate_per_s, config.burst) if config.rate_per_s else None
    write_lock = threading.Lock()

    with path.open("a", encoding="utf-8") as fh:
        if _ends_mid_line(path):
            fh.write("\n")  # a line cut by a crash must not swallow the next row
        for predictor in predictors:
            todo = [(v, it) for v, it in work if (predictor.name, it.id) not in done]
            result.skipped_done[predictor.name] = len(work) - len(todo)
            result.ran[predictor.name] = 0
            bar = None
            if config.progress and todo:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), desc=f"{benchmark} / {predictor.name}", unit="item", leave=False)

            def one(variant: str, item: Item, predictor: Predictor = predictor) -> None:
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
                                usage=usage, error=error, meta=pred.meta)
                with write_lock:
                    fh.write(row.model_dump_json() + "\n")
                    fh.flush()
                    result.ran[predictor.name] += 1
                    if bar is not None:
                        bar.update(1)

            try:
                if config.concurrency == 1:
                    for variant, item in todo:
                        one(variant, item)
                else:
                    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
                        futures = [pool.submit(one, v, it) for v, it in todo]
                        finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
                        for f in pending:
                            f.cancel()
                        for f in finished:
                            f.result()
            finally:
                if bar is not None:
                    bar.close()
    rows, _ = read_results(path)
    result.rows = [r for r in rows if r.mode in names]
    return result
