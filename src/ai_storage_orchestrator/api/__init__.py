"""api layer (see docs/DESIGN.md)."""
