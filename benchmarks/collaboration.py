"""The collaboration measured end to end: every mode side by side on the concept-world QA benchmark.

What it runs (each step a real `slc` command, printed before it runs):
1. ``slc data qa --out OUT/qa`` (the frozen test split: held-out concepts neither model trained on);
2. ``slc eval BENCH --root OUT/qa --mode ...`` for recognition, visual QA, text-only QA and two-concept choice,
   every mode in one run per benchmark (same items, same models): the large role alone (plain, with memory's
   facts, with reference photos), the small VLM alone, slc without reflection, slc (R = 1, 2) and the SLC paper's
   per-concept reflection;
3. the controlled experiment: the same modes that use the small VLM with its presence claims flipped at known
   rates (``--inject-errors``), on recognition and two-concept choice;
4. one table (``OUT/collaboration.md`` + ``.json``): per benchmark and mode, the score with its 95% bootstrap CI
   over concepts, wrong presence claims in final answers (95% CI), large-VLM calls and tokens per question.

Models (offline): the small VLM is the shipped identity bank, the large role the shipped (or given) concept-world
large role, run in-process (``local:``; `transformers serve` gives the same replies over HTTP, see
tests/training/test_large_role.py). A fresh data folder per run (the eval tenants' memories).

    python benchmarks/collaboration.py --out runs/collab [--large-role PATH] [--inject 0.25,0.25] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = {"rap-recognition": "weighted", "yollava-vqa": "accuracy", "yollava-text-qa": "accuracy",
              "mc-llava-choice": "accuracy"}
MODES = ["large", "large-desc", "large-refs", "small", "slc-noreflect", "slc", "slc-r2", "slc-paper"]
SMALL_MODES = ["small", "slc-noreflect", "slc", "slc-r2", "slc-paper"]
TEXT_MODES = ["large", "large-desc", "small", "slc"]  # text-only questions: no photo, so no detection or reflection


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - t0


def _cell(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "-"
    if est.get("lo") is None:
        return f"{est['value']:.3f}"
    return f"{est['value']:.3f} [{est['lo']:.3f}, {est['hi']:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/collab"))
    ap.add_argument("--large-role", type=Path, default=None, help="large-role checkpoint (default: the shipped one)")
    ap.add_argument("--inject", default="0.25,0.25", help="fp,fn rates of the injected-error runs ('' to skip)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N items per benchmark (a quick check)")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--locate", default=None, help="SLC_SMALL__LOCATE for the small VLM (default: the settings' auto)")
    args = ap.parse_args()

    from slc.training.bank import SHIPPED_IDENTITY_BANK
    from slc.training.large_role import shipped_large_role

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    large = (args.large_role or shipped_large_role()).resolve()
    env = {**os.environ, "SLC_SMALL__ADAPTER_BANK": str(SHIPPED_IDENTITY_BANK), "SLC_LARGE__MODEL": f"local:{large}",
           "SLC_LARGE__MAX_TOKENS": "48", "SLC_IMAGE_ENCODER": "object-histogram", "SLC_DATA_DIR": str(out / "data"),
           "SLC_REFLECTION_ROUNDS": "1"}
    env.pop("SLC_SMALL__MODEL", None)
    if args.locate:
        env["SLC_SMALL__LOCATE"] = args.locate
    slc = [sys.executable, "-m", "slc.cli"]
    qa = out / "qa"
    _run([*slc, "data", "qa", "--out", str(qa)], env, log)
    modes = args.modes.split(",")
    runs: list[tuple[str, str, Path]] = []
    for bench in args.benchmarks.split(","):
        use = [m for m in modes if m in TEXT_MODES] if bench == "yollava-text-qa" else modes
        dest = out / "clean"
        cmd = [*slc, "eval", bench, "--root", str(qa), "--out", str(dest), *(f"--mode={m}" for m in use)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        wall = _run(cmd, env, log)
        runs.append((bench, "clean", dest / bench))
        print(f"  {bench}: {wall:.0f}s", flush=True)
    if args.inject:
        fp, fn = args.inject.split(",")
        for bench in ("rap-recognition", "mc-llava-choice"):
            if bench not in args.benchmarks.split(","):
                continue
            dest = out / f"inject-fp{fp}-fn{fn}"
            cmd = [*slc, "eval", bench, "--root", str(qa), "--out", str(dest), f"--inject-errors=fp={fp},fn={fn},seed=0",
                   *(f"--mode={m}" for m in modes if m in SMALL_MODES)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            _run(cmd, env, log)
            runs.append((bench, f"injected fp={fp} fn={fn}", dest / bench))

    rows = []
    for bench, setting, folder in runs:
        for r in json.loads((folder / "summary.json").read_text()):
            if r.get("baseline"):
                continue
            score = BENCHMARKS.get(bench, "accuracy")
            rows.append({"benchmark": bench, "setting": setting, "mode": r["mode"], "n": r["n"], "metric": score,
                         "score": r["columns"].get(score), "shuffled": r["columns"].get(f"{score}_shuffled"),
                         "wrong_presence": r.get("wrong_presence"), "presence_pairs": r.get("presence_pairs"),
                         "calls": r.get("calls_per_item"), "tokens": r.get("tokens_per_item"),
                         "small_calls": r.get("small_calls_per_item"), "unparsed": r.get("unparsed")})
    (out / "collaboration.json").write_text(json.dumps(rows, indent=1))
    lines = ["| benchmark | setting | mode | n | score (95% CI) | options shuffled (95% CI) | wrong presence claims "
             "(95% CI) | large calls/q | tokens/q | small calls/q | unparsed |", "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['benchmark']} ({r['metric']}) | {r['setting']} | {r['mode']} | {r['n']} | {_cell(r['score'])} | "
                     f"{_cell(r['shuffled'])} | {_cell(r['wrong_presence'])} | {r['calls']:.2f} | {r['tokens']:.0f} | {r['small_calls']:.2f} | "
                     f"{r['unparsed']} |")
    table = "\n".join(lines)
    (out / "collaboration.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
