"""Offline stand-ins for two things the API server does with the CRD schema.

:func:`apply_defaults` fills in ``default`` values the way the API server's structural
defaulting does; :func:`validator` checks an object against the OpenAPI schema (everything
except CEL rules, list-map keys and unknown-field pruning) with ``jsonschema``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
from payment_operator.api import crdgen


@cache
def root_schema() -> dict[str, Any]:
    return crdgen.root_schema()


def apply_defaults(obj: Any, schema: dict[str, Any] | None = None) -> Any:
    """A copy of ``obj`` with the schema's defaults filled in, recursively."""
    schema = root_schema() if schema is None else schema
    obj = copy.deepcopy(obj)
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = apply_defaults(obj[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in obj:
                if key not in schema.get("properties", {}):
                    obj[key] = apply_defaults(obj[key], extra)
    elif isinstance(obj, list) and "items" in schema:
        obj = [apply_defaults(item, schema["items"]) for item in obj]
    return obj


@cache
def validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(root_schema())
