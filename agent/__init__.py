"""slc.agent: the bottom layer: settings, errors, schemas, prompts, safe image loading, and the model runtimes
(small VLM with its recognition protocols and adapter bank, large VLM, model loading). The `slc` command line
lives in slc.cli."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slc-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
