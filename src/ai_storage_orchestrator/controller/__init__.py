"""controller layer (see docs/DESIGN.md)."""
