"""slc.tools: LangChain tools for host agents.

- :func:`make_answer_tool`: the whole SLC graph as one tool ("answer a question about this photo").
- :func:`make_memory_tools`: remember / recall / forget a concept.
- :class:`PersonalizeTool`: the small VLM alone ("detect the user's concepts in this image").
"""

from __future__ import annotations

from typing import Any

__all__ = ["PersonalizeTool", "make_answer_tool", "make_memory_tools"]

_WHERE = {
    "make_answer_tool": "slc.tools.answer",
    "make_memory_tools": "slc.tools.memory_tools",
    "PersonalizeTool": "slc.tools.personalize",
}


def __getattr__(name: str) -> Any:  # lazy: importing slc.tools must not load torch or chromadb
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'slc.tools' has no attribute {name!r}")
