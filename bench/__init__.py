"""Benchmarks of the orchestrator on the local control plane (simulated nodes): `make bench` (see docs/BENCHMARKS.md).

Every scenario measures and reports; none of them is a pass/fail test. Results go to bench/results/latest.json and
the table in docs/BENCHMARKS.md."""
