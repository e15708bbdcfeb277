"""slc.tools: LangChain tools for host agents.

- :func:`make_answer_tool`: the whole SLC graph as one tool ("answer a question about this photo").
- :func:`make_memory_tools`: remember / recall / forget a concept.
- :class:`PersonalizeTool`: the small VLM alone ("detect the user's concepts in this image").
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

__all__ = ["PersonalizeTool", "make_answer_tool", "make_memory_tools"]

_WHERE = {
    "make_answer_tool": "slc.tools.answer",
    "make_memory_tools": "slc.tools.memory_tools",
    "PersonalizeTool": "slc.tools.personalize",
}


__getattr__ = lazy_exports(__name__, _WHERE)
