"""slc.memory.importers."""
