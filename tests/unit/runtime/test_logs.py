"""Redaction happens on values before they are serialised, so escaping cannot hide a secret.

JSON writes ``"`` as ``\\"``, ``\\`` as ``\\\\`` and a newline as ``\\n``: redacting the
serialised line (as the formatter used to) no longer finds a secret holding one of them.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from payment_runtime import logs

pytestmark = pytest.mark.unit

SECRETS = [
    'pa"ss"word-1',
    "back\\slash\\2",
    "new\nline\r\n3",
    "tab\tand\x01control\x7f4",
    'all"of\\them\n\x00\u00e9\u20ac5',
]


def _escaped_forms(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("paydeck.test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)


@pytest.mark.parametrize("secret", SECRETS, ids=range(len(SECRETS)))
def test_a_secret_with_quotes_backslashes_or_controls_is_masked(captured, secret):
    log, stream = captured
    logs.register_secret(secret)
    log.info("connecting with %s now", secret)
    log.info("config %s", json.dumps({"dsn_like": secret}))  # the JSON-escaped form
    log.info("note", extra={"detail": f"value={secret}", "nested": {"list": [secret]}})
    log.info("keys", extra={"by_key": {secret: 1}})
    try:
        raise KeyError(secret)  # a traceback shows the repr
    except KeyError:
        log.exception("lookup failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    for line in lines:
        document = json.loads(line)  # still one valid JSON object per line
        assert logs.REDACTED in line
        for form in _escaped_forms(secret):
            assert form not in line
            assert form not in json.dumps(document, ensure_ascii=False)
            for value in _strings(document):
                assert form not in value


def test_patterns_apply_to_values_and_the_json_stays_valid(captured):
    log, stream = captured
    log.info('token "Bearer abc.def.ghi" for "jane.doe@example.com"')
    log.info("card", extra={"n": 4242424242424242, "ok": 1234, "s": "4242 4242 4242 4242"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == f'token "{logs.REDACTED}" for "{logs.REDACTED}"'
    assert second["n"] == logs.REDACTED and second["s"] == logs.REDACTED and second["ok"] == 1234


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
