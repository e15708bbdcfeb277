"""``python -m slc.cli``: the `slc` command."""

from slc.cli.app import main

main()
