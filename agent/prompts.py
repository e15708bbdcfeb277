"""Every prompt slc sends to a model, in one place, each with a version.

Why versioned: detections, verdicts and eval results record the prompt version they were produced with,
so a changed prompt never silently mixes with old cached results. Bump a version when its text changes.
Edit this file section by section (small VLM / reflection / reasoning / identity & trees).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------
# Small VLM: detection (slc.agent.small_vlm)
# ---------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------
# Large VLM: reflection, reasoning, identity extraction (slc.graphs, slc.memory)
# ---------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------
# Concept-as-Tree: tree extraction from descriptions/images (slc.cat)
# ---------------------------------------------------------------------------------------------------
