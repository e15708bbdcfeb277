"""Where is <c>? The shipped reference bank's location claim against baselines, on the concept-world QA photos.

    python benchmarks/localization.py [--splits validation test] [--root DIR] [--threads 1]
    python benchmarks/localization.py --sweep          # the settings grid on validation concepts (defaults)

What it measures: the shipped small VLM (``slc.training.bank.SHIPPED_IDENTITY_BANK``, recognition protocol
"reference") locates a concept with its reference head, no generation (``ReferenceRecognition.locate``: an
occlusion map of the photo, candidate regions scored alone and blanked, the best region's 3x3 cell). The photos
are those of ``slc data qa`` (held-out concepts of the identity split 0; generated here into a temporary folder
per split, or read from ``--root``), truth from its manifest (every object's 3x3 location):

- two-object photos: the visual QA photos (the concept and a look-alike beside it) and the two-concept photos
  (both concepts, or one concept and a look-alike of the other): one row per registered concept drawn in them;
- one-object photos: the recognition positives (the concept alone, other free leaves moved).

Rows: the default method over every (photo, concept) the concept is truly in ("all pairs"), and through the
runtime a user runs (``SmallVLM.detect(locate="auto")``: a location only for concepts judged present; the
share judged present and the accuracy among them); the window scan it replaced (9 windows around the 3x3 cell
centres, as crops resized by the processor or kept in place with the rest blanked), and baselines on the same
photos: always "center", the larger object's cell, a random one of the photo's objects (expected value: the
chance of naming the right object when every object's cell were known). Accuracy = predicted cell is the
concept's cell; within one = at most one row and one column off. 95% intervals: bootstrap over concepts
(slc.evals.intervals). Cost: wall ms per photo (all its concepts in one call), medians, of
``detect(locate="never")`` and of ``locate="auto"`` / ``"always"``, interleaved photo by photo.

Measured (shipped bank, CPU, 1 thread; 28 concepts per split, 140 two-object and 112 one-object pairs):

    split       photos       regions (default)     windows crop 0.5   windows kept 0.4   larger obj   random obj
    validation  two-object   0.700 [0.621, 0.779]  0.379              0.586              0.557        0.500
    validation  one-object   0.786 [0.679, 0.884]  0.107              0.625              1            1
    test        two-object   0.621 [0.536, 0.707]  0.471              0.643 [.557,.721]  0.450        0.500
    test        one-object   0.875 [0.786, 0.955]  0.098              0.696              1            1

Through ``detect(locate="auto")`` only concepts judged present get a cell: on test two-object photos 64 of 140
(0.46), 0.609 [0.476, 0.725] of them right. Extra cost: +41 ms per two-object photo (median; 8 ms without
locating). The defaults (locate_grid 6, locate_peak 0.1, locate_radius 1) are the best two-object accuracy of
``--sweep`` on validation (grid 8: 0.707 at twice the passes; grid 5: 0.650; radius 2: <= 0.48). Negative
result: on test the plain window scan (kept in place) is as good (0.643 vs 0.621, CIs overlapping) although it
was 0.11 worse on validation; neither tells the concept from a look-alike beside it much better than chance
(0.5), which is the head's twin accuracy showing (training/IDENTITY-LOG.md).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROW_COL = {c: divmod(i, 3) for i, c in enumerate(("top left", "top", "top right", "left", "center", "right",
                                                 "bottom left", "bottom", "bottom right"))}


def near(a: str | None, b: str) -> bool:
    if a is None:
        return False
    (r1, c1), (r2, c2) = ROW_COL[a], ROW_COL[b]
    return max(abs(r1 - r2), abs(c1 - c2)) <= 1


def windows_cell(vlm, ref_sig, image, view: str, width: float):
    """The replaced window scan: 9 windows around the 3x3 cell centres (clamped to the photo), the best one's cell."""
    import torch

    from slc.agent.reference import CELLS, border_colour, kept

    fill = border_colour(image)
    w, h = image.size
    boxes = [(min(max(cx - width / 2, 0), 1 - width), min(max(cy - width / 2, 0), 1 - width))
             for cy in (1 / 6, 0.5, 5 / 6) for cx in (1 / 6, 0.5, 5 / 6)]
    boxes = [(x, y, x + width, y + width) for x, y in boxes]
    if view == "crop":
        views = [image.crop((round(b[0] * w), round(b[1] * h), round(b[2] * w), round(b[3] * h))) for b in boxes]
    else:
        views = [kept(image, b, fill) for b in boxes]
    proto = vlm.protocol
    sig = proto.signatures(vlm.handle(), views)
    out = {}
    for name, ref in ref_sig.items():
        with torch.inference_mode():
            out[name] = CELLS[int(proto.head.score(sig, ref.expand_as(sig)).argmax())]
    return out


def run_split(split: str, root: Path | None, vlm, repeats: int) -> dict:
    from PIL import Image

    from slc.agent.detection import ConceptQuery
    from slc.agent.recognition import RecognitionPair
    from slc.training.concept_world_qa import QAConfig, generate_qa

    if root is None:
        root = Path(tempfile.mkdtemp(prefix=f"slc-loc-{split}-"))
        generate_qa(root, QAConfig(split=split))
    m = json.loads((root / "manifest.json").read_text())
    proto, handle = vlm.protocol, vlm.handle()
    refs = {c["name"]: sorted((root / "yollava-data" / "train" / c["name"]).glob("*.png")) for c in m["concepts"]}
    ref_images = {n: tuple(Image.open(p).convert("RGB") for p in ps) for n, ps in refs.items()}
    ref_sig = {n: proto.signatures(handle, ims).mean(0) for n, ims in ref_images.items()}
    rows: list[dict] = []
    cost = {"never": [], "auto": [], "always": []}
    rng = random.Random(0)
    for rel, info in m["images"].items():
        objs = info["objects"]
        mine = [o for o in objs if o["concept"]]
        if not mine or "negative_example" in rel:
            continue
        image = Image.open(root / rel).convert("RGB")
        queries = [ConceptQuery(name=o["concept"], reference_images=refs[o["concept"]]) for o in mine]
        pairs = [RecognitionPair(image=image, image_key=rel, query=q, references=ref_images[q.name]) for q in queries]
        located = proto.locate(handle, pairs)
        detected = vlm.detect(image, queries, locate="auto")
        crop = windows_cell(vlm, {o["concept"]: ref_sig[o["concept"]] for o in mine}, image, "crop", 0.5)
        masked = windows_cell(vlm, {o["concept"]: ref_sig[o["concept"]] for o in mine}, image, "mask", 0.4)
        larger = max(objs, key=lambda o: (o["bbox"][2] - o["bbox"][0]) * (o["bbox"][3] - o["bbox"][1]))["location"]
        for o, loc, det in zip(mine, located, detected):
            rows.append({"concept": o["concept"], "objects": len(objs), "truth": o["location"],
                         "cells": [x["location"] for x in objs], "regions": loc.cell if loc else None,
                         "present": det.status == "present", "auto": det.location_absolute,
                         "crop": crop[o["concept"]], "mask": masked[o["concept"]], "larger": larger})
        if len(objs) == 2:
            for _ in range(repeats):
                for mode in rng.sample(list(cost), len(cost)):
                    t0 = time.perf_counter()
                    vlm.detect(image, queries, locate=mode)
                    cost[mode].append((rel, time.perf_counter() - t0))
    return {"root": str(root), "rows": rows, "cost": cost, "split": split}


def table(result: dict) -> None:
    from slc.evals.intervals import bootstrap_ci

    def est(rows: list[dict], hit: Callable[[dict], float], within: Callable[[dict], float]) -> tuple[str, str, int]:
        if not rows:
            return "-", "-", 0
        stats = np.array([[hit(r), within(r), 1.0] for r in rows])
        clusters = [r["concept"] for r in rows]
        a = bootstrap_ci(stats, clusters, lambda s: s[..., 0] / s[..., 2])
        b = bootstrap_ci(stats, clusters, lambda s: s[..., 1] / s[..., 2])
        return a.text(), b.text(), len(rows)

    def fixed(key: str) -> tuple[Callable[[dict], float], Callable[[dict], float]]:
        return (lambda r: float(r[key] == r["truth"])), (lambda r: float(near(r[key], r["truth"])))

    methods: list[tuple[str, Callable[[list[dict]], list[dict]], Callable, Callable]] = [
        ("reference head, regions (default), all pairs", lambda rs: rs, *fixed("regions")),
        ("  through SmallVLM locate=auto: judged present", lambda rs: [r for r in rs if r["present"]], *fixed("auto")),
        ("windows at the 9 cell centres, crop 0.5 resized", lambda rs: rs, *fixed("crop")),
        ("windows at the 9 cell centres, 0.4 kept in place", lambda rs: rs, *fixed("mask")),
        ("baseline: always center", lambda rs: rs, lambda r: float(r["truth"] == "center"),
         lambda r: float(near("center", r["truth"]))),
        ("baseline: the larger object's cell", lambda rs: rs, *fixed("larger")),
        ("baseline: a random object's cell (expected)", lambda rs: rs,
         lambda r: sum(c == r["truth"] for c in r["cells"]) / len(r["cells"]),
         lambda r: sum(near(c, r["truth"]) for c in r["cells"]) / len(r["cells"])),
    ]
    rows = result["rows"]
    print(f"\n## split: {result['split']} ({result['root']}), {len({r['concept'] for r in rows})} concepts")
    for label, n_obj in (("two-object photos (visual QA + two-concept)", 2),
                         ("one-object photos (recognition positives)", 1)):
        subset = [r for r in rows if r["objects"] == n_obj]
        judged = sum(r["present"] for r in subset)
        print(f"\n### {label}: {len(subset)} (photo, concept) pairs; "
              f"judged present: {judged} ({judged / len(subset):.2f})")
        print(f"| {'method':50} | {'cell accuracy [95% CI]':24} | {'within one cell [95% CI]':24} | {'n':>4} |")
        print(f"|{'-' * 52}|{'-' * 26}|{'-' * 26}|{'-' * 6}|")
        for name, pick, hit, within in methods:
            a, b, n = est(pick(subset), hit, within)
            print(f"| {name:50} | {a:24} | {b:24} | {n:>4} |")
    cost = result["cost"]
    per = {mode: dict(v) for mode, v in cost.items()}  # last repeat per photo
    med = {mode: statistics.median(t for _, t in v) * 1000 for mode, v in cost.items()}
    extra = {mode: statistics.median((per[mode][k] - per["never"][k]) * 1000 for k in per["never"])
             for mode in ("auto", "always")}
    print(f"\ncost per two-object photo (all its concepts in one call; wall ms, medians over "
          f"{len(per['never'])} photos): "
          f"locate=never {med['never']:.1f}, auto {med['auto']:.1f} (extra {extra['auto']:+.1f}), "
          f"always {med['always']:.1f} (extra {extra['always']:+.1f})")


def sweep(vlm, root: Path | None) -> None:
    """Cell accuracy of each (locate_grid, locate_peak, locate_radius) on validation concepts: how the defaults
    were chosen (the test split is never swept)."""
    from PIL import Image

    from slc.agent.detection import ConceptQuery
    from slc.agent.recognition import RecognitionPair, ReferenceRecognition
    from slc.training.concept_world_qa import QAConfig, generate_qa

    if root is None:
        root = Path(tempfile.mkdtemp(prefix="slc-loc-sweep-"))
        generate_qa(root, QAConfig(split="validation"))
    m = json.loads((root / "manifest.json").read_text())
    if m["split"] != "validation":
        raise SystemExit(f"{root} holds the {m['split']} split; the sweep runs on validation only")
    train = root / "yollava-data" / "train"
    refs = {c["name"]: tuple(Image.open(p).convert("RGB") for p in sorted((train / c["name"]).glob("*.png")))
            for c in m["concepts"]}
    photos = []
    for rel, info in m["images"].items():
        mine = [o for o in info["objects"] if o["concept"]]
        if mine and "negative_example" not in rel:
            image = Image.open(root / rel).convert("RGB")
            photos.append((len(info["objects"]), [(o["location"], RecognitionPair(
                image=image, image_key=rel, query=ConceptQuery(name=o["concept"]), references=refs[o["concept"]]))
                for o in mine]))
    handle = vlm.handle()
    print("| grid | peak | radius | two-object acc | one-object acc |\n|---|---|---|---|---|")
    for grid in (4, 5, 6, 8):
        for peak in (0.05, 0.1, 0.2):
            for radius in (1, 2):
                proto = ReferenceRecognition.with_head(vlm.protocol.head, grid=grid, peak=peak, radius=radius)
                hits: dict[int, list[bool]] = {1: [], 2: []}
                for n_obj, asked in photos:
                    for (truth, _), loc in zip(asked, proto.locate(handle, [p for _, p in asked])):
                        hits[n_obj].append(loc is not None and loc.cell == truth)
                print(f"| {grid} | {peak} | {radius} | {np.mean(hits[2]):.3f} | {np.mean(hits[1]):.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", nargs="+", default=["validation", "test"], choices=["validation", "test"])
    ap.add_argument("--root", type=Path, default=None, help="an existing `slc data qa` folder (one split only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="timed detect calls per photo and mode")
    ap.add_argument("--sweep", action="store_true", help="sweep the locate settings on validation concepts instead")
    args = ap.parse_args()
    if args.root is not None and len(args.splits) != 1 and not args.sweep:
        ap.error("--root is one folder: give one --splits value (the split it was generated for)")

    import logging

    import torch

    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    from slc.agent.adapters import AdapterBank
    from slc.agent.small_vlm import SmallVLM
    from slc.training.bank import SHIPPED_IDENTITY_BANK

    bank = AdapterBank.load(SHIPPED_IDENTITY_BANK)
    vlm = SmallVLM.from_pretrained(bank.base_model, bank=bank, device="cpu")
    c = vlm.config
    print(f"# shipped identity bank, CPU, torch threads={args.threads}; locate_grid={c.locate_grid} "
          f"locate_peak={c.locate_peak} locate_radius={c.locate_radius}")
    if args.sweep:
        sweep(vlm, args.root)
        return
    for split in args.splits:
        table(run_split(split, args.root, vlm, args.repeats))


if __name__ == "__main__":
    main()
