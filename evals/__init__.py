"""slc.evals: benchmark loaders (datasets), metrics, modes/predictors, the resumable runner, reports (`slc eval` lives in slc.cli.eval).

Modules: ``datasets`` (typed items + loaders of the published files, with load reports), ``metrics`` (scores as
BENCHMARKS.md defines them, letter/yes-no parsing, char-BLEU, option shuffling, trivial baselines),
``predictors`` (the Predictor protocol, usage metering, the LLM cache), ``modes`` (the mode registry),
``runner`` (resumable concurrent runs to JSONL), ``report`` (markdown/JSON/PNG summaries).
"""
