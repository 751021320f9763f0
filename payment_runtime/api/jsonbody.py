"""Parsing untrusted JSON bodies into a refusal with a code, never an exception that is a 500.

The standard parser is fine for well-formed input, but a few inputs escape its
``JSONDecodeError``: nesting deeper than the interpreter's recursion limit
(``RecursionError``), an integer of more than 4300 digits (``ValueError``), and ``\\ud800``
escapes that decode to lone surrogates, which no UTF-8 encoder (the response's, the
database's) accepts later. :func:`loads` bounds all three, and refuses the non-standard
``NaN`` and ``Infinity`` literals. The bounds are far above anything the API or a Stripe
event carries.
"""

from __future__ import annotations

import json
from typing import Any

from payment_runtime.errors import ApiError

#: Containers within containers; a Stripe event nests about ten deep.
MAX_DEPTH = 32
#: Digits of an integer; amounts have at most 8, Stripe's timestamps 10.
MAX_INT_DIGITS = 40
#: Characters of a number with a fraction or exponent.
MAX_FLOAT_CHARS = 64


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _too_large() -> _Refused:
    return _Refused("number_too_large", "a number in the body is too large")


def _parse_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise _too_large()
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else float("inf")
    if value in (float("inf"), float("-inf")):
        raise _too_large()
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused("invalid_json", f"{text} is not JSON")


def _too_deep() -> _Refused:
    return _Refused("json_too_deep", f"the body nests more than {MAX_DEPTH} levels deep")


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("invalid_json", "the body has an invalid \\u escape") from None


def _check(document: Any) -> None:
    """Depth and text of every value, without recursion."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def loads(raw: bytes | str) -> Any:
    """The parsed document, or :class:`ApiError` 400 with ``invalid_json``,
    ``json_too_deep`` or ``number_too_large``."""
    try:
        document = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
        _check(document)
    except _Refused as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except RecursionError:
        deep = _too_deep()
        raise ApiError(400, deep.code, deep.message) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    return document
