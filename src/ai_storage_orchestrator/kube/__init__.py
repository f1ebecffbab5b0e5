"""kube layer (see docs/DESIGN.md)."""
