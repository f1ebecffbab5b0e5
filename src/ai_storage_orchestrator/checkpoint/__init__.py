"""checkpoint layer (see docs/DESIGN.md)."""
