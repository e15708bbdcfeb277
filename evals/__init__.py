"""slc.evals."""
