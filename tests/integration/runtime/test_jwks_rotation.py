"""A signing key removed from the JWKS stops verifying within the key-set cache time.

``payment-runtime serve`` fetches its JWKS from a local HTTP endpoint that the test
rotates, as an identity provider does: key A and B published, then only B. PyJWT's
per-kid cache (``cache_keys=True``) used to keep A's key for the life of the process, so a
token signed by a retired (say, leaked) key was accepted until a restart.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.fixtures import _process
from tests.integration.runtime import processes
from tests.integration.runtime.helpers import Signer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PROVIDERS = "/api/v1/payments/providers/NL"
CACHE_SECONDS = 2


class JwksEndpoint:
    """Serves ``self.keys`` as a JWKS, counting fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_GET(self):
                endpoint.fetches += 1
                body = json.dumps({"keys": endpoint.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


def test_a_key_removed_from_the_jwks_stops_verifying(dsn, stripe_mock, signer, tmp_path):
    old, new = Signer(kid="key-2025"), Signer(kid="key-2026")
    with JwksEndpoint() as jwks:
        jwks.keys = old.jwks["keys"] + new.jwks["keys"]
        port = _process.free_port()
        env = processes.runtime_env(
            dsn,
            stripe_mock.api_base,
            processes.write_jwks(signer, tmp_path),
            port,
            jwks_url=jwks.url,
            jwks_cache_seconds=CACHE_SECONDS,
        )
        runtime = processes.RuntimeProcess(["serve"], env, tmp_path / "serve.log", port)
        with processes.running(runtime):

            def call(who: Signer | str) -> int:
                token = who if isinstance(who, str) else who.token("payment_viewer")
                h = {"Authorization": f"Bearer {token}"}
                return httpx.get(f"{runtime.url}{PROVIDERS}", headers=h, timeout=10).status_code

            # One token of the old key, verified (and so remembered) before the rotation:
            # the verified-token cache must not outlive the key set that verified it.
            old_token = old.token("payment_viewer", sub="cached")
            assert call(old_token) == 200, runtime.log()
            assert call(old) == 200
            assert call(new) == 200
            jwks.keys = new.jwks["keys"]  # the provider retires the old key
            removed_at = time.monotonic()
            for who, what in ((old_token, "the cached token"), (old, "fresh tokens")):
                _process.wait_until(
                    lambda who=who: call(who) == 401,
                    what=f"the retired key to stop verifying {what}",
                    timeout=CACHE_SECONDS + 5,
                    interval=0.2,
                )
                assert time.monotonic() - removed_at <= CACHE_SECONDS + 2
            assert call(new) == 200
            for _ in range(5):  # and it stays refused
                assert call(old) == 401
                assert call(old_token) == 401
