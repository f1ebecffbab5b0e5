"""pydantic's JSON Schema turned into the two dialects this project publishes: OpenAPI 3.0 (the REST document) and
a Kubernetes structural schema (the CRD's ``openAPIV3Schema``). Both are self-contained: references are inlined."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel

JSON = dict[str, Any]


def openapi_schema(model: type[BaseModel], *, by_alias: bool = False, components: Collection[str] = ()) -> JSON:
    """OpenAPI 3.0: ``X | None`` becomes ``nullable``, a ``Literal`` of one value an ``enum`` of it (3.0 has no
    ``const``), ``dict[str, Any]`` a plain ``object``; no titles, no ``$defs``. A nested model named in `components`
    stays a reference to the document's component of that name; every other one is inlined."""
    document = model.model_json_schema(by_alias=by_alias)
    schema: JSON = _convert(document, document.get("$defs", {}), structural=False, depth=0, components=components)
    return schema


def structural_schema(model: type[BaseModel], *, required_depth: int = 1) -> JSON:
    """A structural schema the API server accepts: camelCase names (the aliases), no nulls, ``required`` kept only
    down to `required_depth` (the resource and its spec; nested records are the orchestrator's own, written whole)."""
    document = model.model_json_schema(by_alias=True)
    schema: JSON = _convert(
        document, document.get("$defs", {}), structural=True, depth=0, required_depth=required_depth
    )
    return schema


def _convert(
    node: Any, defs: JSON, *, structural: bool, depth: int, required_depth: int = 99, components: Collection[str] = ()
) -> Any:
    def convert(value: Any, depth: int) -> Any:
        return _convert(
            value, defs, structural=structural, depth=depth, required_depth=required_depth, components=components
        )

    if isinstance(node, list):
        return [convert(v, depth) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node and node["$ref"].rsplit("/", 1)[1] in components:
        return {"$ref": f"#/components/schemas/{node['$ref'].rsplit('/', 1)[1]}"}
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[1]]
        node = {**target, **node}
    nullable = False
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) == 1 and len(node["anyOf"]) == 2:
            del node["anyOf"]
            option = options[0]
            if "$ref" in option:
                option = {**defs[option["$ref"].rsplit("/", 1)[1]]}
            node = {**option, **node}
            nullable = True
    out: JSON = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            out[key] = {name: convert(sub, depth + 1) for name, sub in value.items()}
        elif key == "required" and structural and depth > required_depth:
            continue
        elif key == "const" and not structural:
            out.setdefault("enum", [value])
        elif key == "additionalProperties" and value is True and not structural:
            continue  # the default
        else:
            out[key] = convert(value, depth)
    if nullable and not structural:
        out["nullable"] = True
    return out
