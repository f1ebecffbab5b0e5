"""Equal short strings of listed and watched objects held as one string object each.

A JSON decoder makes a new string for every value it reads, so a model of 10,000 pods held 10,000 copies of
"Running", of each image name, of every default toleration's key and of each node's name. Interned, each is held once:
about 30 % less memory for such pods (docs/BENCHMARKS.md, scale). ``sys.intern`` drops a string from its table once
nothing else holds it, so values seen once (uids, resource versions) cost nothing after their object is gone.

It runs where objects are decoded, per LIST page and per watch event (kube/resources.py): the copies are freed while
few exist, and their memory is reused, instead of after a whole LIST (the process would keep the peak). The walk
replaces values in place with equal strings: whoever else holds the object sees no difference."""

from __future__ import annotations

import sys
from typing import Any

# Longer values (a JSON-encoded annotation, a certificate) are rarely repeated; interning them saves little.
LONGEST_SHARED = 64


def share_strings(obj: dict[str, Any]) -> None:
    """Intern every string value of at most LONGEST_SHARED characters in `obj`, at any depth (an explicit stack:
    an object's nesting never meets the recursion limit)."""
    intern = sys.intern
    stack: list[dict[str, Any] | list[Any]] = [obj]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in pairs:
            kind = type(value)
            if kind is str:
                if len(value) <= LONGEST_SHARED:
                    node[key] = intern(value)  # type: ignore[index]
            elif kind is dict or kind is list:
                stack.append(value)
