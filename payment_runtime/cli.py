"""The ``payment-runtime`` command: ``serve``, ``migrate`` and ``relay``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from pydantic import ValidationError

from payment_runtime import logs, migrations, tracing
from payment_runtime.adapters import secrets as secret_providers
from payment_runtime.settings import Settings

log = logging.getLogger("payment_runtime")


def _relay(
    settings: Settings,
    dsn: str,
    sasl: secret_providers.KafkaSasl | None,
    stop: threading.Event,
    once: bool,
) -> int:
    from payment_runtime.adapters.kafka_relay import (
        OutboxRelay,
        drain,
        make_producer,
        security_config,
    )
    from payment_runtime.metrics import Metrics

    relay = OutboxRelay(
        dsn,
        make_producer(
            settings.kafka_bootstrap_servers,
            settings.kafka_message_timeout_ms,
            security_config(settings, sasl),
        ),
        Metrics(),
        batch_size=settings.relay_batch_size,
    )
    if once:
        sent = drain(relay, deadline_seconds=60)
        relay.close()
        log.info("outbox drained", extra={"published": sent})
        return 0
    relay.run(stop, settings.relay_poll_interval_seconds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="payment-runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="apply pending SQL migrations (advisory-locked)")
    relay = sub.add_parser("relay", help="publish the outbox to Kafka")
    relay.add_argument("--once", action="store_true", help="drain the outbox and exit")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:
        # Names and reasons only: the values may be anything the pod was given.
        for error in exc.errors(include_input=False, include_url=False):
            name = "PAYMENT_" + "_".join(str(p) for p in error["loc"]).upper()
            print(f"payment-runtime: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    provider = secret_providers.provider_for(settings)

    if args.command == "migrate":
        applied = migrations.migrate(secret_providers.load_database_url(settings, provider))
        log.info("migrations applied", extra={"versions": applied})
        return 0

    tracing.configure(settings)  # off unless PAYMENT_TRACING_OTLP_ENDPOINT is set
    try:
        return _run(args, settings, provider)
    finally:
        tracing.shutdown()  # the batch processor's last spans go out


def _run(
    args: argparse.Namespace, settings: Settings, provider: secret_providers.SecretProvider
) -> int:
    if args.command == "relay":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        dsn = secret_providers.load_database_url(settings, provider)
        sasl = secret_providers.load_kafka_sasl(settings, provider)
        return _relay(settings, dsn, sasl, stop, args.once)

    import uvicorn

    from payment_runtime.api.app import MetricsPortDispatch, create_app
    from payment_runtime.domain.fx import RateTableError

    runtime_secrets = secret_providers.load_runtime_secrets(settings, provider)
    if runtime_secrets.stripe_webhook_secret is None:
        log.warning(
            "no Stripe webhook secret configured: webhooks are disabled",
            extra={"secret_name": settings.secret_name_stripe_webhook_secret},
        )
    if settings.jwks_url is None:
        log.warning("no JWKS URL (PAYMENT_JWKS_URL) configured: the payment API is disabled")
    try:
        app = create_app(settings, runtime_secrets)
    except RateTableError as exc:
        print(f"payment-runtime: invalid PAYMENT_FX_RATES_FILE: {exc}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = args.port or settings.port
    metrics_port = settings.metrics_port if settings.metrics_port != port else None

    def config(listen_port: int) -> uvicorn.Config:
        return uvicorn.Config(
            app if metrics_port is None else MetricsPortDispatch(app, metrics_port),
            host=host,
            port=listen_port,
            log_config=None,  # keep our JSON, redacting handler
            access_log=False,
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            server_header=False,
            loop="uvloop",  # C event loop and HTTP parser, not asyncio's loop and h11
            http="httptools",
        )

    server = uvicorn.Server(config(port))
    # One server, one lifespan, one set of signal handlers; with a metrics port it
    # listens on two sockets and MetricsPortDispatch keeps the second to /metrics.
    sockets = None
    if metrics_port is not None:
        sockets = [server.config.bind_socket(), config(metrics_port).bind_socket()]

    stop = threading.Event()
    relay_thread: threading.Thread | None = None
    if settings.relay_in_process:
        sasl = secret_providers.load_kafka_sasl(settings, provider)
        relay_thread = threading.Thread(
            target=_relay,
            args=(settings, runtime_secrets.database_url, sasl, stop, False),
            name="outbox-relay",
            daemon=True,
        )
        relay_thread.start()
    # uvicorn shuts down gracefully on SIGTERM, then restores the handler it found and
    # raises the signal again. With the default handler that would kill the process
    # right there (exit -15, relay not stopped); with this one, main() finishes and
    # returns 0. A SIGTERM after uvicorn's handler is gone only stops the relay sooner.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # SIGINT, re-raised by uvicorn after a graceful shutdown
        pass
    finally:
        stop.set()
        if relay_thread is not None:
            relay_thread.join(timeout=10)
        for sock in sockets or ():
            sock.close()
    if not server.started:
        return 3  # uvicorn's STARTUP_FAILURE, as uvicorn.run() exits with
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
