"""slc.graphs."""
