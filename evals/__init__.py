"""slc.evals: benchmark loaders, reply parsing, metrics with intervals, modes, the resumable runner, reports
(`slc eval` lives in slc.cli.eval).

Modules: ``items`` (typed items and load reports), ``datasets`` (loaders of the published files and the
registry), ``mcllava`` / ``myvlm`` (those projects' own folder layouts), ``annotations`` (question text:
tags, inline options), ``paths`` (image paths under --root, and why none was found), ``quality`` (repeats,
degenerate items), ``parsing`` (one option letter or yes/no from a reply), ``metrics`` (scores as
BENCHMARKS.md defines them, char-BLEU, option shuffling), ``scoring`` (per-item counts and every reported
metric over them), ``intervals`` (cluster bootstrap), ``baselines`` (trivial baselines and their expected
values), ``fingerprint`` (what produced a result row), ``predictors`` / ``small_mode`` / ``modes`` (the
modes), ``injection`` (injected small-model errors), ``presence`` (wrong presence claims in final answers),
``runner`` (resumable concurrent runs to JSONL), ``report`` / ``plots`` (tables, JSON, PNG).
"""
