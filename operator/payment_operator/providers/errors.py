"""The one exception the providers raise internally, and the helpers that word it."""

from __future__ import annotations

import math
import re
from typing import Any, Final

#: Longest error message a provider reports (the status keeps a metric's message short).
MESSAGE_MAX: Final = 300

_NUMBER = re.compile(
    r"[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)


class ProviderError(Exception):
    """A measurement could not be taken; ``str()`` is the short reason shown in the status."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(message))


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def to_number(value: Any, where: str) -> float:
    """A JSON number, or a string holding one (``"0.99"``, ``"NaN"``, ``"+Inf"``), as a float.

    Booleans and anything else raise :class:`ProviderError` naming ``where``.
    """
    if isinstance(value, bool):
        raise ProviderError(f"{where} is not a number: {value!r}")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    raise ProviderError(f"{where} is not a number: {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
