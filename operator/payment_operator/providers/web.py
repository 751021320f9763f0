"""The web provider: an HTTP GET whose JSON response holds the value at a JSON path.

The path is read by jsonpath-ng (``$.data.ratio``, ``data.ratio``,
``$.results[0].value``...) and must match exactly one value: a number, a string holding
one (``"0.99"``, ``"NaN"``) or null, which counts as no data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng.jsonpath import JSONPath
from jsonpath_ng.parser import parse as parse_path

from payment_operator.api import v1alpha1 as api
from payment_operator.providers import http
from payment_operator.providers.errors import ProviderError, to_number
from payment_operator.providers.templates import render

_LOCK = threading.Lock()


def fetch(spec: api.WebQuery, variables: Mapping[str, str]) -> float | None:
    """The value at ``spec.json_path``, None for null; :class:`ProviderError` otherwise."""
    path = compile_path(spec.json_path)
    response = http.get(
        render(spec.url, variables),
        headers={h.name: h.value for h in spec.headers or ()},
        timeout=spec.timeout_seconds,
    )
    if not response.ok:
        raise ProviderError(f"HTTP {response.status}: {response.text() or 'no body'}")
    return value_at(path, spec.json_path, response.json())


def value_at(path: JSONPath, text: str, body: Any) -> float | None:
    """The one value ``path`` (compiled from ``text``) selects in ``body``."""
    matches = path.find(body)
    if not matches:
        raise ProviderError(f"jsonPath {text} matched nothing")
    if len(matches) > 1:
        raise ProviderError(f"jsonPath {text} matched {len(matches)} values, expected 1")
    value = matches[0].value
    if value is None:
        return None
    return to_number(value, f"the value at {text}")


@lru_cache(maxsize=256)
def compile_path(text: str) -> JSONPath:
    """The parsed JSON path; :class:`ProviderError` when jsonpath-ng cannot read it."""
    try:
        with _LOCK:  # PLY, behind jsonpath-ng, promises no thread safety: one parse at a time
            return parse_path(text)
    except Exception as error:
        raise ProviderError(f"bad jsonPath {text}: {error}") from error
