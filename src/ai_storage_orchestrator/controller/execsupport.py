"""What this replica has learned about running commands in each node's containers (the checkpoint's `pods/exec`).

A checkpoint that could exec on a node says that node supports it; one skipped with ``exec_unavailable`` says it does
not (simulated nodes, a kubelet without streaming); one that ran no exec says nothing. What was learned is trusted for
``ttl_seconds``, then forgotten, so a node whose kubelet changed is tried again. Two uses: a checkpoint with nothing
declared on a node known to lack exec is skipped without a doomed exec (one with hooks or artifacts is always tried),
and a pre-warmed target starts beside the checkpoint unless the checkpoint is known to be skipped (a skipped checkpoint
changes the target's spec, which cannot be changed once created: a target started beside it is removed and started
again, once per node and TTL)."""

from __future__ import annotations

import time
from collections.abc import Callable


class ExecSupport:
    def __init__(self, *, ttl_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._seen: dict[str, tuple[bool, float]] = {}

    def note(self, node: str, *, works: bool) -> None:
        self._seen[node] = (works, self._clock())

    def works(self, node: str) -> bool | None:
        """True or False as last seen within the TTL; None when not known."""
        seen = self._seen.get(node)
        if seen is None or self._clock() - seen[1] > self.ttl_seconds:
            return None
        return seen[0]
