"""Learning benchmark: recognition of concepts never seen in training, after N CPU-minutes on 2 cores.

Usage (the final run quoted in training/LEARNING-LOG.md; ~33 wall-minutes on the shared 2-core machine)::

    python benchmarks/learning.py --out runs/learning --meta-minutes 12 --meta-steps 5200 \
        --adapter-minutes 3 --k 1,4 --holdout 64 --eval-every 60 --protocol likelihood --aux-weight 6

Same as ``slc train benchmark`` (see :mod:`slc.training.benchmark` for the recipe and what is compared).
Prints the table (positive / negative / weighted accuracy, easy and hard negatives separately, per
system) and the curve (accuracy vs. training CPU-minutes); writes ``results.json`` in ``--out``.
"""

from slc.cli.train import app

if __name__ == "__main__":
    import sys

    sys.argv.insert(1, "benchmark")
    app()
