"""JSON logging with redaction of secrets, tokens and personal data.

Redaction happens in the formatter, on every value of a record *before* it is serialised
(message, extra fields and their keys, the traceback), so nothing a handler writes can
carry: a registered secret value (every value a secret provider returned), a bearer token
or JWT, a Stripe key, a password in a URL, an e-mail address or a card-number-like digit
run. Redacting the serialised line instead would miss a secret holding a quote, a
backslash or a control character, which JSON writes escaped. A registered secret is also
masked in its JSON-escaped and ``repr`` forms, as a careless ``json.dumps`` or a
traceback prints it. Fields whose names say they are sensitive are masked whole.

While a span is current (or a caller's ``traceparent`` is the request's context, see
:mod:`payment_runtime.tracing`) a line carries its ``trace_id`` and ``span_id`` in hex.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

REDACTED = "[REDACTED]"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_re: re.Pattern[str] | None = None

_PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+"),  # Stripe keys
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"),  # Stripe webhook secrets
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
    re.compile(r"(?i)\bpassword=[^\s&]+"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # e-mail
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),  # card-number-like digit runs
]

SENSITIVE_FIELD = re.compile(
    r"(?i)(secret|token|password|passwd|authorization|api_key|apikey|cookie|"
    r"card|cvc|email|phone|signature|dsn|database_url)"
)

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def register_secret(value: str) -> None:
    """Never print ``value`` (or any line containing it) in a log line again."""
    global _secrets_re
    if len(value) < 4:
        return  # too short to redact without mangling ordinary text
    with _secrets_lock:
        forms = {
            value,
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            repr(value)[1:-1],
        }
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with registered secrets and sensitive patterns masked."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex in _PATTERNS:
        text = regex.sub(REDACTED, text)
    return text


def _clean(key: str, value: Any) -> Any:
    """``value`` with every string redacted; numbers that print as a secret are masked."""
    if SENSITIVE_FIELD.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(key, v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if redact(str(value)) == str(value) else REDACTED
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                document[redact(key)] = _clean(key, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            document["trace_id"] = format(span.trace_id, "032x")
            document["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            document["stack"] = redact(self.formatStack(record.stack_info))
        # Every value is redacted already: escaping can no longer hide a secret from it.
        return json.dumps(document, default=lambda v: redact(str(v)), ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stdout as redacted JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
