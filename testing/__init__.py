"""slc.testing."""
