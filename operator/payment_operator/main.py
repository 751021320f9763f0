"""The ``payment-operator`` command: run the Kopf operator with metrics and liveness."""

from __future__ import annotations

import argparse
import logging
import sys

import kopf
from prometheus_client import start_http_server

from payment_operator import handlers
from payment_operator.settings import Settings
from payment_operator.state import OperatorState


def liveness_endpoint(settings: Settings) -> str:
    """Kopf's liveness URL: where it listens (an IPv6 address in brackets)."""
    host = settings.liveness_bind_address
    shown = f"[{host}]" if host.version == 6 else str(host)
    return f"http://{shown}:{settings.liveness_port}/healthz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="payment-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=None,
                        help="namespace to watch (repeatable); all namespaces by default")
    parser.add_argument("--standalone", action="store_true", default=None,
                        help="no peering: only for a single replica or a local run")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespaces"] = args.namespace
    if args.standalone:
        overrides["standalone"] = True
    settings = Settings(**overrides)  # type: ignore[arg-type]

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not args.verbose:
        # Kopf logs every successful handler call at INFO; keep successes quiet, not failures.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    state = OperatorState.from_settings(settings)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, state)
    start_http_server(settings.metrics_port, addr=str(settings.metrics_bind_address))
    kopf.run(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.standalone,
        liveness_endpoint=liveness_endpoint(settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
