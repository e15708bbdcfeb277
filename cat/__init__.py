"""slc.cat: Concept-as-Tree — trees, controllable positives/negatives, generators, quality filter, export.

Import from the flat modules (``slc.cat.tree``, ``slc.cat.edits``, ``slc.cat.world``, ``slc.cat.render``,
``slc.cat.generators``, ``slc.cat.filter``, ``slc.cat.export``, ``slc.cat.pipeline``); the most used names
are re-exported lazily here so ``import slc.cat`` stays cheap.
"""

from __future__ import annotations

from slc.agent.lazy import lazy_exports

_EXPORTS = {
    "Attribute": "tree", "ConceptTree": "tree", "tree_from_description": "tree",
    "Change": "edits", "Edit": "edits", "Sample": "edits", "SamplingPlan": "edits", "Vocabulary": "edits",
    "sample_edits": "edits",
    "ConceptWorld": "world", "WorldConcept": "world", "WORLD_VOCABULARY": "world", "make_world": "world",
    "world_tree": "world",
    "render": "render", "render_with_info": "render", "RenderInfo": "render",
    "Generator": "generators", "ProceduralGenerator": "generators", "DiffusersGenerator": "generators",
    "FilterConfig": "filter", "FilterReport": "filter", "ObjectHistogramEmbedder": "filter", "QualityFilter": "filter",
    "DatasetConfig": "pipeline", "generate_dataset": "pipeline",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, {name: f"slc.cat.{module}" for name, module in _EXPORTS.items()})
