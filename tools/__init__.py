"""slc.tools."""
