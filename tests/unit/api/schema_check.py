"""A tiny validator for the subset of OpenAPI 3.0 schema keywords the orchestrator's document uses.

Unknown keywords are an error, so the document cannot rely on something this validator silently ignores."""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]

_ANNOTATIONS = frozenset({"description", "default", "format", "title", "example", "deprecated"})
_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "nullable",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "not",
    }
)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def resolve(document: JSON, ref: str) -> JSON:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def errors(instance: Any, schema: JSON, document: JSON, path: str = "$") -> list[str]:
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        return [f"{path}: schema uses unsupported keywords {sorted(unknown)}"]
    if "$ref" in schema:
        return errors(instance, resolve(document, schema["$ref"]), document, path)
    if instance is None:
        return [] if schema.get("nullable") or "type" not in schema else [f"{path}: null is not allowed"]
    found: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        allowed = _TYPES[expected]
        if not isinstance(instance, allowed) or (isinstance(instance, bool) and bool not in allowed):
            return [f"{path}: expected {expected}, got {type(instance).__name__}"]
    if "not" in schema and not errors(instance, schema["not"], document, path):
        found.append(f"{path}: matches a schema it must not match ({schema['not']})")
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{path}: {instance!r} not in {schema['enum']}")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        found += [f"{path}: missing {name}" for name in schema.get("required", []) if name not in instance]
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                found += errors(value, properties[key], document, f"{path}.{key}")
            elif extra is False:
                found.append(f"{path}: unexpected property {key}")
            elif isinstance(extra, dict):
                found += errors(value, extra, document, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            found += errors(item, schema["items"], document, f"{path}[{index}]")
    if isinstance(instance, list) and "maxItems" in schema and len(instance) > schema["maxItems"]:
        found.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            found.append(f"{path}: {instance} < {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            found.append(f"{path}: {instance} > {schema['maximum']}")
    if isinstance(instance, str):
        if "minLength" in schema and len(instance) < schema["minLength"]:
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            found.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and re.search(schema["pattern"], instance) is None:
            found.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    return found


def unsupported_keywords(schema: JSON, path: str = "$") -> list[str]:
    """Keywords this validator does not understand, anywhere in `schema` (nested properties, items...)."""
    found = [f"{path}.{key}" for key in sorted(set(schema) - _KEYWORDS - _ANNOTATIONS)]
    for name, sub in (schema.get("properties") or {}).items():
        found += unsupported_keywords(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += unsupported_keywords(schema[key], f"{path}.{key}")
    return found


def response_schema(document: JSON, *, method: str, path: str, status: int) -> JSON:
    """The JSON schema the document declares for `status` of `method path`; fails when it is not documented."""
    operation = document["paths"][path][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path} does not document {status}"
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = resolve(document, response["$ref"])
    schema: JSON = response["content"]["application/json"]["schema"]
    return schema
