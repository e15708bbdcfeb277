"""slc.cli: the `slc` command (ask, chat, scan, concept, data, train, eval, demo) and its console output.

The top layer: it may import every other package (and slc.testing, for the offline demo); nothing imports
it. ``python -m slc.cli`` runs the same app as the ``slc`` console script (:func:`slc.cli.app.main`).
"""
