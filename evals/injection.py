"""Injected small-model errors: a controlled experiment on what each mode lets through (``slc eval
--inject-errors fp=0.2,fn=0.2,seed=0``).

What is flipped: the small VLM's presence claims, where every mode gets them, i.e. the Detections that
:meth:`slc.agent.small_vlm.SmallVLM.detect_batch` returns (``detect`` and ``scan`` go through it; the graph's
personalize node and the "small" mode's recognition both call ``detect``). :class:`InjectedSmallVLM` wraps
the runtime and flips each "absent" claim to "present" with probability ``fp`` and each "present" claim to
"absent" with probability ``fn`` (rates per claim, whatever the truth: the experiment controls the claims,
the benchmark's truth then says which flips made an error). An "unknown" detection is no claim and is never
flipped (the "small" mode's forced choice on it is left as it is).

Deterministic: the draw of a claim is a hash of (seed, image key, concept), so the same photo and concept
flip the same way in every mode, run and round (a loop-back's second detection repeats the error: it is
the small model's, not a coin's). Inside an eval item the image key is the item's image path as the
annotation writes it (:func:`injection_scope`, set by the predictors); elsewhere a path names itself and
decoded pixels are hashed. Each flip is recorded in the scope (the prediction's ``meta.injected``) and the
injection is part of the small model's description (:func:`slc.evals.fingerprint.describe_small_vlm`).

A flipped claim looks like a real one: an absent->present flip takes its location from the small model's
own JSON reply when it wrote one (else none), its confidence becomes ``max(p, 1 - p)``; a present->absent
flip drops the locations and takes ``min(p, 1 - p)`` (below 0.5), as the detector itself would report them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slc.agent.detection import ConceptQuery, Detection
from slc.agent.detection_json import parse_detection_output

if TYPE_CHECKING:
    from slc.agent.images import ImageSource
    from slc.agent.small_vlm import SmallVLM


@dataclass(frozen=True)
class ErrorInjection:
    """Flip rates of the small VLM's presence claims: ``fp`` = P(absent -> present), ``fn`` = P(present ->
    absent), per claim, deterministic in ``seed``."""

    fp: float = 0.0
    fn: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fp", "fn"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--inject-errors: {name} must be between 0 and 1, got {value}")

    @classmethod
    def parse(cls, spec: str) -> ErrorInjection:
        """``"fp=0.2,fn=0.2[,seed=0]"`` (either rate may be left out: 0). Raises ValueError naming the problem."""
        values: dict[str, Any] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in ("fp", "fn", "seed") or key in values:
                raise ValueError(f"--inject-errors takes fp=RATE,fn=RATE[,seed=N], not {spec!r}")
            try:
                values[key] = int(raw) if key == "seed" else float(raw)
            except ValueError:
                raise ValueError(f"--inject-errors: {key}={raw.strip()!r} is not a number") from None
        if not values.keys() & {"fp", "fn"}:
            raise ValueError(f"--inject-errors takes fp=RATE,fn=RATE[,seed=N], not {spec!r}")
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        return {"fp": self.fp, "fn": self.fn, "seed": self.seed}

    def draw(self, key: str, concept: str) -> float:
        """The claim's uniform draw in [0, 1), fixed by (seed, image key, concept)."""
        digest = hashlib.sha256(f"{self.seed}\0{key}\0{concept}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def flips(self, key: str, concept: str, status: str) -> bool:
        """Whether this claim is flipped (never an "unknown" one)."""
        rate = {"absent": self.fp, "present": self.fn}.get(status)
        return rate is not None and self.draw(key, concept) < rate


def flip(d: Detection) -> Detection:
    """``d`` with its presence claim reversed, as the detector would have reported the other answer."""
    p = d.confidence
    if d.status == "absent":
        answer = parse_detection_output(d.raw_output, d.concept).answer if d.raw_output else None
        return d.model_copy(update={
            "status": "present", "confidence": max(p, 1.0 - p),
            "location_absolute": answer.location_absolute if answer else None,
            "location_relative": answer.location_relative if answer else None,
            "json_present": True if d.json_present is not None else None})
    low = min(p, 1.0 - p)
    return d.model_copy(update={
        "status": "absent", "confidence": low if low < 0.5 else 0.49, "location_absolute": None,
        "location_relative": None, "json_present": False if d.json_present is not None else None})


@dataclass
class _Scope:
    key: str
    flipped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_SCOPE: ContextVar[_Scope | None] = ContextVar("slc_eval_injection_scope", default=None)


@contextlib.contextmanager
def injection_scope(key: str) -> Iterator[list[str]]:
    """Inside the block, the photo the small VLM is asked about is ``key`` (an eval item's image path), and
    the claims flipped are appended to the yielded list (``"<concept>:absent->present@round0"``). Like the
    usage tally, it follows the item into the graph's nodes (context variables are copied to them)."""
    scope = _Scope(key)
    token = _SCOPE.set(scope)
    try:
        yield scope.flipped
    finally:
        _SCOPE.reset(token)


def image_key(image: ImageSource) -> str:
    """A photo's key outside an eval item: a path names itself; bytes and decoded pixels are hashed."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(image).hexdigest()
    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return "pixels:" + h.hexdigest()


class InjectedSmallVLM:
    """A :class:`~slc.agent.small_vlm.SmallVLM` whose detections' presence claims are flipped at the
    :class:`ErrorInjection` rates; everything else (adapters, handle, pass hooks, config) is the wrapped
    runtime's own."""

    def __init__(self, inner: SmallVLM, injection: ErrorInjection) -> None:
        self.inner = inner
        self.injection = injection

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "injection"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def detect_batch(self, images: Sequence[ImageSource], concepts: Sequence[ConceptQuery], **kwargs: Any
                     ) -> list[list[Detection]]:
        rows = self.inner.detect_batch(images, concepts, **kwargs)
        scope = _SCOPE.get()
        round_ = kwargs.get("round", 0)
        out = []
        for i, (image, row) in enumerate(zip(images, rows, strict=True)):
            if scope is None:
                key = image_key(image)
            else:
                key = scope.key if len(images) == 1 else f"{scope.key}#{i}"
            new = []
            for d in row:
                if self.injection.flips(key, d.concept, d.status):
                    flipped = flip(d)
                    if scope is not None:
                        with scope.lock:
                            scope.flipped.append(f"{d.concept}:{d.status}->{flipped.status}@round{round_}")
                    d = flipped
                new.append(d)
            out.append(new)
        return out

    def detect(self, image: ImageSource, concepts: Sequence[ConceptQuery], *, round: int = 0,
               locate: Any = None) -> list[Detection]:
        return self.detect_batch([image], concepts, round=round, locate=locate)[0]

    def scan(self, images: Sequence[ImageSource], concept: ConceptQuery, *, batch_size: int | None = None,
             progress: bool = False, locate: Any = None, on_invalid_image: str = "unknown") -> list[Detection]:
        rows = self.detect_batch(images, [concept], batch_size=batch_size, progress=progress, locate=locate,
                                 on_invalid_image=on_invalid_image)
        return [row[0] for row in rows]


def inject_errors(vlm: SmallVLM | InjectedSmallVLM, injection: ErrorInjection) -> InjectedSmallVLM:
    """``vlm`` with ``injection`` (an already wrapped runtime gets the new rates, not a second wrapper)."""
    inner = vlm.inner if isinstance(vlm, InjectedSmallVLM) else vlm
    return InjectedSmallVLM(inner, injection)


def injection_of(vlm: Any) -> ErrorInjection | None:
    """The injection a small VLM runs with (None: its own claims)."""
    return vlm.injection if isinstance(vlm, InjectedSmallVLM) else None


__all__ = ["ErrorInjection", "InjectedSmallVLM", "flip", "image_key", "inject_errors", "injection_of",
           "injection_scope"]
