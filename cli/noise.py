"""Library noise in the ``slc`` command: silent by default, shown with ``slc -v``.

Why: the libraries under slc talk on their own: transformers draws a "Loading weights" bar for every model
it loads and logs advice meant for model authors, huggingface_hub draws download bars, and deprecation
and future warnings of code we do not own reach a person who can do nothing about them. Without ``-v``
a command shows only its own output (its labelled progress included, :func:`slc.cli.console.progress`);
with ``-v`` all of it comes back. Nothing here imports those libraries (``slc --help`` stays fast): it
sets what they read when they are imported, and switches the ones this process has already imported.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Warning categories that come from libraries, never from slc (slc reports through its errors and output).
_LIBRARY_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning)
_LOGGERS = ("transformers", "huggingface_hub", "sentence_transformers", "chromadb", "peft", "accelerate", "httpx")


def library_noise(verbose: bool) -> None:
    """Silence the libraries' bars, logs and warnings unless ``verbose`` (``slc -v``), which shows them."""
    level = logging.WARNING if verbose else logging.ERROR  # WARNING: the libraries' own default
    os.environ["TRANSFORMERS_VERBOSITY"] = "warning" if verbose else "error"  # read when transformers is imported
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(level)
    if "huggingface_hub" in sys.modules or not verbose:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars  # light: no torch

        (enable_progress_bars if verbose else disable_progress_bars)()  # transformers reads it when imported
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:  # already imported (a second command in one process): switch it directly
        hf_logging.enable_progress_bar() if verbose else hf_logging.disable_progress_bar()
        hf_logging.set_verbosity(level)
    for category in _LIBRARY_WARNINGS:
        warnings.filterwarnings("default" if verbose else "ignore", category=category)


__all__ = ["library_noise"]
