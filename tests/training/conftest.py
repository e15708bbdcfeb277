"""Shared helpers of the training tests: a handful of rendered concept-world examples, real tiny models."""

from __future__ import annotations

import itertools
from typing import Any

import pytest


@pytest.fixture(scope="session")
def world() -> Any:
    from slc.cat.world import make_world

    return make_world(1024, seed=0)


@pytest.fixture(scope="session")
def few_examples(world: Any) -> list[Any]:
    """16 recognition/describe examples of 4 concepts (a fixed set a tiny model can fit in a few steps)."""
    from slc.cat.edits import SamplingPlan
    from slc.training.data import TaskMix, stream_examples

    names = [c.name for c in world][:4]
    stream = stream_examples(world, names, SamplingPlan(positives=2, easy=1, hard=1, seed=0),
                             mix=TaskMix(recognition=1, describe=1, detection=0), contrast=True)
    return list(itertools.islice(stream, 16))


def cycle_stream(examples: list[Any]):
    """A make_stream(start_round) for the trainer that repeats a fixed list."""

    def make(start_round: int):
        return itertools.cycle(examples)

    return make
