"""Subprocess body of the multi-process tests (run as a script, not collected by pytest).

usage: python _worker.py add   CLIP_PATH GO_FILE PREFIX N SEED    -> registers PREFIX0..N-1 + tries "shared"
       python _worker.py hang  CLIP_PATH MARKER                   -> stops forever right before the commit
SLC_DATA_DIR (and any SLC_CHROMA__URL) come from the environment, like any slc process. The text side
uses HFTextEmbedder (same MiniLM weights and vectors as sentence-transformers, without its import cost).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB")


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from slc.agent.errors import DuplicateConceptError
    from slc.memory.embedders import HFImageEmbedder, HFTextEmbedder
    from slc.memory.store import ConceptMemory

    mode, clip = sys.argv[1], sys.argv[2]
    mem = ConceptMemory(image_embedder=HFImageEmbedder(clip), text_embedder=HFTextEmbedder())
    if mode == "add":
        go, prefix, n, seed = Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
        deadline = time.time() + 60
        while not go.exists() and time.time() < deadline:
            time.sleep(0.01)
        shared_ok = False
        for i in range(n):
            mem.add(f"{prefix}{i}", [noise(seed * 100 + 2 * i), noise(seed * 100 + 2 * i + 1)], description=f"thing {i}")
            if i == n // 2:
                try:
                    mem.add("shared", [noise(seed * 1000)])
                    shared_ok = True
                except DuplicateConceptError:
                    pass
        print(json.dumps({"shared": shared_ok}))
    elif mode == "hang":
        marker = Path(sys.argv[3])

        def stall(*args, **kwargs):
            marker.write_text("image records and files written; commit not done")
            time.sleep(600)

        mem._concepts.add = stall  # the crash window: everything but the commit marker is written
        mem.add("doomed", [noise(1), noise(2), noise(3)])


if __name__ == "__main__":
    main()
