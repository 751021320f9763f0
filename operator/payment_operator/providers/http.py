"""One bounded HTTP GET returning JSON, with every failure worded as a :class:`ProviderError`.

Bounded in time (``timeout`` for each wait on the server and for the whole exchange) and in
size (:data:`MAX_BODY`), so a stuck or chatty server cannot hold a reconcile thread.
Redirects are followed; TLS certificates are verified against certifi's roots (httpx's default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from payment_operator.providers.errors import ProviderError, clip

#: Largest response body read, in bytes.
MAX_BODY: Final = 1 << 20


@dataclass(frozen=True)
class Response:
    """Status code and body of a response that arrived in full."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (NaN and Infinity literals accepted)."""
        try:
            return json.loads(self.body)
        except UnicodeDecodeError as error:
            raise ProviderError("response is not JSON: not UTF-8") from error
        except json.JSONDecodeError as error:
            raise ProviderError(
                f"response is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from error

    def text(self, limit: int = 120) -> str:
        """The start of the body as text, for error messages."""
        return clip(self.body[: limit * 4].decode("utf-8", "replace"), limit)


def get(
    url: str,
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """GET ``url``; raises :class:`ProviderError` on timeout, connection or protocol errors."""
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True) as client,
            client.stream("GET", url, params=params, headers=_headers(headers)) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise ProviderError(f"response larger than {MAX_BODY // 1024} KiB")
                if time.monotonic() > deadline:
                    raise _timed_out(timeout)
            if time.monotonic() > deadline:
                raise _timed_out(timeout)
            return Response(response.status_code, bytes(body))
    except httpx.TimeoutException as error:
        raise _timed_out(timeout) from error
    except httpx.ConnectError as error:
        raise ProviderError(f"cannot connect: {error or type(error).__name__}") from error
    except httpx.HTTPError as error:
        raise ProviderError(f"request failed: {error or type(error).__name__}") from error
    except httpx.InvalidURL as error:
        raise ProviderError(f"invalid URL: {error}") from error


def _headers(extra: Mapping[str, str] | None) -> httpx.Headers:
    """``Accept: application/json`` unless ``extra`` says otherwise (names are case-blind)."""
    headers = httpx.Headers({"Accept": "application/json"})
    headers.update(extra or {})
    return headers


def _timed_out(timeout: float) -> ProviderError:
    return ProviderError(f"timed out after {timeout:g}s")
