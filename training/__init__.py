"""slc.training."""
