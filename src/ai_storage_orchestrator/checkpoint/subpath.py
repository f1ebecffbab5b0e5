"""What a restore init container needs to see a ``subPathExpr`` mount where its container sees it (pure).

The kubelet expands ``$(VAR)`` in a mount's ``subPathExpr`` from the container's environment when it starts the
container (``$$`` is a literal ``$``). The restore init container runs in the same pod, so it gets the same mount --
the same ``subPathExpr``, left to the kubelet -- and copies of the env entries the expression needs: the kubelet
expands it identically, in the target pod and in a pod recreated from the target's manifest by a rollback, where the
pod's name and node differ. Only entries that take the same value in every container of a pod are copied: literal
values (with the entries their own ``$(VAR)`` references need) and ``fieldRef`` (the pod's own fields, the downward
API). A variable set any other way -- ``secretKeyRef``, ``configMapKeyRef``, ``resourceFieldRef`` (per container),
``envFrom``, the kubelet's service variables -- is not reproduced: ``SubPathExprUnsupported``, and the checkpoint
declaration is refused at planning rather than restored to the wrong place.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class SubPathExprUnsupported(ValueError):
    """The restore cannot give its init container the environment a subPathExpr needs."""


def references(text: str) -> list[str]:
    """The names ``$(NAME)`` refers to in ``text``, read as the kubelet's expansion reads them: ``$$`` is an escaped
    ``$``, a ``$`` before anything but ``(`` is literal, and ``$(`` without a closing ``)`` is literal."""
    names: list[str] = []
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            if text[cursor + 1] == "(":
                close = text.find(")", cursor + 2)
                if close >= 0:
                    names.append(text[cursor + 2 : close])
                    cursor = close + 1
                    continue
            cursor += 2
            continue
        cursor += 1
    return names


def _source(entry: Mapping[str, Any]) -> str:
    """How an env entry gets its value: 'value', 'fieldRef', or the unsupported source's name."""
    value_from = entry.get("valueFrom")
    if not value_from:
        return "value"
    return next(iter(value_from), "valueFrom")


def restore_env(container: Mapping[str, Any], expressions: Iterable[str]) -> list[dict[str, Any]]:
    """Copies of the env entries of ``container`` that ``expressions`` (subPathExpr values) need, in their order;
    SubPathExprUnsupported when one cannot be reproduced in another container of the pod."""
    entries: Sequence[Mapping[str, Any]] = container.get("env") or []
    keep: set[int] = set()

    def need(name: str, before: int, wanted_by: str) -> None:
        index = next((i for i in range(before - 1, -1, -1) if entries[i].get("name") == name), None)
        if index is None:
            raise SubPathExprUnsupported(
                f"variable {name!r} ({wanted_by}) is not set in the container's env"
                + (" (it may come from envFrom)" if container.get("envFrom") else "")
            )
        if index in keep:
            return
        source = _source(entries[index])
        if source == "value":
            keep.add(index)
            for reference in references(str(entries[index].get("value") or "")):
                need(reference, index, f"used by variable {name!r}")
        elif source == "fieldRef":
            keep.add(index)
        else:
            raise SubPathExprUnsupported(
                f"variable {name!r} ({wanted_by}) comes from {source}, which a restore container cannot reproduce"
            )

    for expression in expressions:
        for name in references(expression):
            need(name, len(entries), f"used by subPathExpr {expression!r}")
    return [copy.deepcopy(dict(entries[i])) for i in sorted(keep)]
