"""slc.graphs: the SLC answer graph (recall -> personalize -> reflect -> reason), its state, context,
service factory, sessions, node-by-node turns and tracing.

Entry points (resolved lazily so ``import slc.graphs`` stays cheap): ``graph`` / ``build_graph`` /
``compile_graph`` (slc.graphs.slc), ``Context`` (slc.graphs.context), ``ServiceFactory``
(slc.graphs.services), ``ask`` / ``aask`` / ``open_graph`` / ``open_checkpointer`` (slc.graphs.sessions),
``run_turn`` (slc.graphs.turns), ``State`` / ``Answer`` (slc.graphs.state).
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

_EXPORTS = {
    "graph": "slc.graphs.slc",
    "build_graph": "slc.graphs.slc",
    "compile_graph": "slc.graphs.slc",
    "Context": "slc.graphs.context",
    "ServiceFactory": "slc.graphs.services",
    "ask": "slc.graphs.sessions",
    "aask": "slc.graphs.sessions",
    "open_graph": "slc.graphs.sessions",
    "open_checkpointer": "slc.graphs.sessions",
    "open_async_checkpointer": "slc.graphs.sessions",
    "TurnResult": "slc.graphs.sessions",
    "run_turn": "slc.graphs.turns",
    "State": "slc.graphs.state",
    "InputState": "slc.graphs.state",
    "Answer": "slc.graphs.state",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
