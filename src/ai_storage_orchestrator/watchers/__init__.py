"""watchers layer (see docs/DESIGN.md)."""
