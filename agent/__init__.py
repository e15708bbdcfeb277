"""slc.agent: settings, model runtimes, prompts and the `slc` command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slc-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
