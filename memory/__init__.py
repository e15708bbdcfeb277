"""slc.memory."""
