"""guardline."""
