"""langgraph.json points at a graph that loads the way `langgraph dev` loads it: from the file path,
without importing torch/transformers/chromadb or opening memory (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("slc_studio_graph", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
g = getattr(mod, sys.argv[2])
heavy = sorted(m for m in ("torch", "transformers", "chromadb", "sentence_transformers") if m in sys.modules)
print(json.dumps({"name": g.name, "nodes": sorted(g.get_graph().nodes), "heavy": heavy,
                  "context": g.context_schema.__name__,
                  "input": sorted(g.get_input_jsonschema()["properties"])}))
"""


def test_langgraph_json_graph_loads_light(tmp_path):
    cfg = json.loads((ROOT / "langgraph.json").read_text())
    path, attr = cfg["graphs"]["slc"].split(":")
    out = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT / path), attr], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["name"] == "slc" and info["context"] == "Context"
    assert {"recall", "personalize", "reflect", "reason"} <= set(info["nodes"])
    assert info["heavy"] == []
    assert {"question", "image", "messages"} <= set(info["input"])
