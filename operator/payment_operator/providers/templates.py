"""Rendering ``{{revision}}``-style placeholders in queries and URLs with Jinja2.

A :class:`~jinja2.sandbox.SandboxedEnvironment` with :class:`~jinja2.StrictUndefined`: a
template cannot reach Python internals, and a variable that is not given is an error rather
than an empty string (an empty revision would silently measure every pod).  Admission
already limits queries and URLs to the known placeholders
(:data:`payment_operator.api.v1alpha1.TEMPLATE_PATTERN`); values are inserted as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from payment_operator.providers.errors import ProviderError

# Autoescaping is for HTML; the output here is PromQL or a URL.
_ENV = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_LOCK = threading.Lock()


@lru_cache(maxsize=256)
def _template(text: str) -> jinja2.Template:
    with _LOCK:
        return _ENV.from_string(text)


def render(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with its placeholders replaced; :class:`ProviderError` when that fails."""
    try:
        return _template(text).render(dict(variables))
    except jinja2.TemplateError as error:
        raise ProviderError(f"template: {error.message or type(error).__name__}") from error
