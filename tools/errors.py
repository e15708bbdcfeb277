"""How every slc tool fails inside a host agent: as a ToolException whose message the host's model can act on.

Why one place: a tool runs inside someone else's agent (``create_agent``, a LangGraph node, any framework
that calls ``BaseTool.invoke``), and an exception that escapes it ends that agent's whole run. So every
tool body runs under :func:`tool_errors`: slc's own errors (a bad photo, an unknown concept, another
tenant's thread) become their message, which already says what to do; anything else (a fault of slc or of
a library under it) is logged with its traceback here and reaches the host's model as a ToolException
saying that its arguments are not the cause. Each tool sets ``handle_tool_error`` (the message becomes the
tool's result) and ``handle_validation_error`` (so do arguments that do not fit the schema).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from langchain_core.tools import ToolException

from slc.agent.errors import SLCError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def tool_errors(tool: str) -> Iterator[None]:
    """Run a tool's body: every exception leaves it as a :class:`ToolException` (see the module docstring)."""
    try:
        yield
    except ToolException:
        raise
    except SLCError as exc:
        raise ToolException(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a host agent must never see a raw exception from a tool
        log.exception("the %s tool failed", tool)
        raise ToolException(
            f"The {tool} tool failed inside slc ({type(exc).__name__}: {exc}). This is not caused by your "
            "arguments and retrying will not help: tell the user it failed.") from exc


__all__ = ["tool_errors"]
