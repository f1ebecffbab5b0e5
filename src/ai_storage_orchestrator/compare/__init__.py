"""compare layer (see docs/DESIGN.md)."""
