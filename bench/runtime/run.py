# ruff: noqa: E501, SIM115
"""Benchmark POST /api/v1/payments on a real server with wrk, beside two floors.

Starts PostgreSQL and stripe-mock (the test fixtures' helpers), migrates a database, runs
``payment-runtime serve`` in a subprocess and drives it with ``wrk`` (native, Debian package;
``bench/runtime/post.lua`` sends a unique ``Idempotency-Key`` per request and a valid JWT):

1. the maximum throughput (closed loop, ``BENCH_CONCURRENCY`` connections), with p50, p99,
   p99.9 and the server's CPU milliseconds per payment (utime + stime of the server process
   and its children, from ``/proc/<pid>/stat``);
2. the latency at about 70 % of that maximum (each connection paced by wrk's ``delay()``,
   corrected once from the first paced run's achieved rate);
3. floor one: ``pgbench`` with the SQL a payment performs, on the same PostgreSQL;
4. floor two: stripe-mock's own throughput for the same PaymentIntent call, from wrk.

Writes the figures to ``bench/results/runtime.md`` and prints them. Bounded: about
6 x ``BENCH_DURATION`` seconds plus start-up.

The cost of the risk checks comes last (``BENCH_RISK=0`` leaves it out): a redis-server (the test fixture's) and,
after the phases above, the maximum throughput again with velocity limits (customer,
payment method and client windows, one with an amount limit; none ever refuses) and a
per-client rate limit on, alternated with the same server configuration without them
(``BENCH_RISK_ROUNDS`` rounds, default 4, of ``BENCH_RISK_DURATION`` seconds, default 8, per
variant), so both are measured in the same run under the same machine load. The rounds
alternate their order
(off then on, on then off, ...): a variant measured always second would always meet a
bigger database and whatever the machine drifted to. It prints both (medians of the
rounds), and the ratios on/off: the median of each round's ratio (its "on" beside its
"off", measured back to back).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from payment_runtime import migrations
from payment_runtime.settings import STRIPE_API_VERSION
from tests.fixtures._process import free_port, wait_until
from tests.fixtures.postgres import start_postgres
from tests.fixtures.redis import start_redis
from tests.fixtures.stripe_mock import start_stripe_mock
from tests.integration.runtime.helpers import AUDIENCE, ISSUER, Signer

DURATION = float(os.environ.get("BENCH_DURATION", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
PACED_SHARE = 0.7
LUA = Path(__file__).with_name("post.lua")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "runtime.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# After the measured phases, one more with py-spy (dev extra) sampling the server: where its
# CPU goes, into runtime.md (BENCH_PROFILE=FILE keeps the collapsed stacks, summarised with
# ``python -m bench.runtime.profile FILE``; BENCH_PROFILE=0 skips the phase).
PROFILE = os.environ.get("BENCH_PROFILE")
RISK = os.environ.get("BENCH_RISK", "1") != "0"
RISK_ROUNDS = int(os.environ.get("BENCH_RISK_ROUNDS", "4"))
#: Seconds of each risk round's phase: shorter than ``BENCH_DURATION``, as there are eight.
RISK_DURATION = float(os.environ.get("BENCH_RISK_DURATION", "8"))
#: The risk checks of the "on" variant: every request runs all three velocity windows (the
#: bench's single customer, payment method and client make them hot keys: the worst case)
#: and the rate limit, and none of them ever refuses.
RISK_ENV = {
    "PAYMENT_VELOCITY_LIMITS": json.dumps(
        [
            {"scope": "customer", "window_seconds": 3600, "max_attempts": 1_000_000},
            {"scope": "payment_method", "window_seconds": 86_400, "max_amount": {"EUR": 10**15}},
            {"scope": "client", "window_seconds": 60, "max_attempts": 1_000_000},
        ]
    ),
    "PAYMENT_RATE_LIMIT_REQUESTS": "1000000",
    "PAYMENT_RATE_LIMIT_WINDOW_SECONDS": "60",
}

PAYMENT_BODY = json.dumps(
    {"amount": 1250, "currency": "EUR", "customer": "c1", "payment_method": "pm_card_visa"}
)
# What StripeGateway.create_intent sends, form-encoded as the SDK does.
INTENT_BODY = urlencode(
    {
        "amount": 1250,
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "capture_method": "manual",
        "metadata[payment_id]": "00000000-0000-0000-0000-000000000000",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
    }
)

PGBENCH_SCRIPT = """
\\set amount random(1, 99999)
BEGIN;
INSERT INTO idempotency_keys (scope, key, request_method, request_path, request_fingerprint, recovery_point, locked_at) VALUES ('bench', gen_random_uuid()::text, 'POST', '/api/v1/payments', md5(random()::text), 'started', now()) ON CONFLICT (scope, key) DO NOTHING RETURNING id \\gset k_
WITH p AS (INSERT INTO payments (id, amount_minor, currency, customer_id, payment_method, status) VALUES (gen_random_uuid(), :amount, 'EUR', 'cust', 'pm_card_visa', 'pending') RETURNING id) UPDATE idempotency_keys SET recovery_point = 'resource_created', resource_id = (SELECT id FROM p) WHERE id = :k_id RETURNING resource_id AS pid \\gset
COMMIT;
BEGIN;
SELECT id FROM payments WHERE id = ':pid' FOR UPDATE;
UPDATE payments SET status = 'failed', stripe_payment_intent_id = 'pi_' || md5(random()::text), updated_at = now() WHERE id = ':pid';
INSERT INTO outbox (event_id, topic, message_key, event_type, payload) VALUES (gen_random_uuid(), 'payment.events', ':pid', 'payment.failed', '{}'::jsonb);
UPDATE idempotency_keys SET recovery_point = 'finished', locked_at = NULL, response_code = 201, response_body = '{}'::jsonb WHERE id = :k_id;
COMMIT;
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, parsed from post.lua's done() line."""

    requests: int
    seconds: float
    ok: int
    declined: int
    errors: int
    other_status: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.rate:.0f}/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"p99.9 {self.p999_ms:.1f} ms ({self.requests} requests: {self.ok} 2xx, {self.declined} 402, {self.errors} errors{f', last status {self.other_status}' if self.other_status else ''})"
        )


def wrk(
    url: str,
    path: str,
    body: str,
    ctype: str,
    auth: str,
    *,
    seconds: float,
    extra: str = "",
    delay_ms: float = 0,
) -> WrkResult:
    """Run wrk against ``url`` and parse its result line."""
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_BODY": body,
        "BENCH_CTYPE": ctype,
        "BENCH_AUTH": auth,
        "BENCH_EXTRA": extra,
        "BENCH_NONCE": uuid.uuid4().hex,
        "BENCH_DELAY_MS": str(round(delay_ms)),
    }
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(THREADS),
            "-c",
            str(CONCURRENCY),
            "-d",
            f"{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^PAYDECK_RESULT (.*)$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    return WrkResult(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        ok=r["ok"],
        declined=r["declined"],
        errors=r["other"] + r["socket_errors"],
        other_status=r["other_status"],
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        p999_ms=r["p999_us"] / 1000,
        mean_ms=r["mean_us"] / 1000,
    )


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids.extend(_tree(int(child)))
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its living descendants, in seconds."""
    total = 0
    for p in _tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def pgbench(dsn: str, work: Path) -> tuple[float, str]:
    (work / "payment.sql").write_text(PGBENCH_SCRIPT)
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-f",
            str(work / "payment.sql"),
            "-c",
            str(CONCURRENCY),
            "-j",
            "2",
            "-T",
            str(int(DURATION)),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    return tps, lat.group(1) if lat else "?"


def start_server(env: dict[str, str], work: Path, port: int) -> subprocess.Popen[bytes]:
    """``payment-runtime serve`` on ``port``, ready."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payment_runtime.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "server.log", "ab"),
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, what="payment-runtime", process=server)
    return server


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(30)


@dataclass(frozen=True)
class Peak:
    result: WrkResult
    cpu_ms: float  # server CPU per request
    redis_cpu_ms: float  # redis-server's CPU per request (its own process, same cores)


def risk_order(rounds: int) -> list[str]:
    """The variants' order over ``rounds`` back-to-back pairs: off-on, on-off, off-on ..."""
    return [v for r in range(rounds) for v in (("off", "on") if r % 2 == 0 else ("on", "off"))]


def risk_compare(env: dict[str, str], work: Path, run: dict[str, str], redis) -> list[str]:
    """Peak throughput with the risk checks off and on, alternated; the report's lines."""
    peaks: dict[str, list[Peak]] = {"off": [], "on": []}
    for variant in risk_order(RISK_ROUNDS):
        port = free_port()
        server = start_server({**env, **(RISK_ENV if variant == "on" else {})}, work, port)
        try:
            base = f"http://127.0.0.1:{port}"
            wrk(base, seconds=2, **run)  # warm-up (and the scripts loaded into Redis)
            cpu0, redis0 = cpu_seconds(server.pid), cpu_seconds(redis.pid)
            result = wrk(base, seconds=RISK_DURATION, **run)
            cpu_ms = (cpu_seconds(server.pid) - cpu0) * 1000 / max(1, result.requests)
            redis_ms = (cpu_seconds(redis.pid) - redis0) * 1000 / max(1, result.requests)
            if result.errors or result.other_status:
                raise RuntimeError(f"risk variant {variant}: unexpected answers: {result.line()}")
            if variant == "on":  # the checks ran (fail-open would hide a Redis it never reached)
                with redis.client() as client:
                    windows = client.keys("paydeck:vel:*")
                    counters = client.keys("paydeck:rl:*")
                    client.flushall()
                if len(windows) != 4 or len(counters) != 1:  # 3 windows, 1 with sums
                    raise RuntimeError(f"the risk checks did not run: {windows} {counters}")
            peaks[variant].append(Peak(result, cpu_ms, redis_ms))
        finally:
            stop_server(server)

    def value(peak: Peak, attr: str) -> float:
        return float(getattr(peak, attr) if attr in ("cpu_ms", "redis_cpu_ms") else getattr(peak.result, attr))

    def mean(variant: str, attr: str) -> float:
        """The median of the variant's runs (one disturbed run on a shared machine is noise)."""
        return statistics.median(value(p, attr) for p in peaks[variant])

    lines = []
    for variant in ("off", "on"):
        runs = ", ".join(f"{p.result.rate:.0f}/s" for p in peaks[variant])
        lines.append(
            f"risk checks {variant:3}: {mean(variant, 'rate'):.0f}/s (runs: {runs}), "
            f"p50 {mean(variant, 'p50_ms'):.1f} ms, p99 {mean(variant, 'p99_ms'):.1f} ms, "
            f"server CPU {mean(variant, 'cpu_ms'):.2f} ms/payment, "
            f"redis-server CPU {mean(variant, 'redis_cpu_ms'):.3f} ms/payment"
        )
    def paired(attr: str) -> float:
        """The median over the rounds of on/off, each round's "on" beside its "off"."""
        pairs = zip(peaks["off"], peaks["on"], strict=True)
        return statistics.median(value(on, attr) / value(off, attr) for off, on in pairs)

    lines.append(
        f"ratio risk on/off (median of {len(peaks['on'])} paired rounds): throughput "
        f"{paired('rate'):.3f}, p50 {paired('p50_ms'):.3f}, p99 {paired('p99_ms'):.3f}, "
        f"CPU/payment {paired('cpu_ms'):.3f}"
    )
    return lines


def profile_phase(
    server: subprocess.Popen[bytes], base: str, run: dict[str, str], work: Path
) -> list[str]:
    """One more closed-loop phase with py-spy sampling the server (its figures discarded:
    the sampler takes CPU of the same two cores): where each millisecond goes, as markdown."""
    from bench.runtime.profile import summarise

    output = Path(PROFILE) if PROFILE else work / "server.collapsed"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking",
            "--format", "raw", "--rate", "200", "--subprocesses",
            "--duration", str(int(DURATION)), "--output", str(output), "--pid", str(server.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cpu0 = cpu_seconds(server.pid)
    sampled = wrk(base, seconds=DURATION, **run)
    spy.wait(60)
    cpu_ms = (cpu_seconds(server.pid) - cpu0) * 1000 / max(1, sampled.requests)
    rows = summarise(output.read_text()) if output.exists() else []
    lines = [
        "",
        "### Where the server's CPU goes (py-spy, a separate phase)",
        "",
        f"{sampled.rate:.0f} payments/s while sampled at 200 Hz, {cpu_ms:.2f} ms of server CPU "
        "per payment; each sample is charged to the innermost frame's library "
        "(`payment_runtime` is our code; the psycopg share is our number of round trips).",
        "",
        "| share | ms per payment | where |",
        "|---:|---:|---|",
        *(f"| {share:.1%} | {share * cpu_ms:.2f} | {name} |" for name, _, share in rows),
    ]
    for line in lines:
        print(line)
    return lines


def main() -> int:
    if shutil.which("wrk") is None:
        print(
            "wrk is missing: hack/system-deps.sh installs it (Debian package wrk)", file=sys.stderr
        )
        return 1
    load_before = os.getloadavg()[0]
    pg = start_postgres()
    sm = start_stripe_mock()
    rd = start_redis() if RISK else None
    server: subprocess.Popen[bytes] | None = None
    work = Path(tempfile.mkdtemp(prefix="paydeck-bench-"))
    try:
        dsn = pg.new_database(prefix="bench")
        migrations.migrate(dsn)
        signer = Signer()
        (work / "jwks.json").write_text(json.dumps(signer.jwks))
        port = free_port()
        env = {
            **os.environ,
            "PAYMENT_DATABASE_URL": dsn,
            "PAYMENT_STRIPE_API_KEY": "sk_test_bench",
            "PAYMENT_STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "PAYMENT_STRIPE_API_BASE": sm.api_base,
            "PAYMENT_JWKS_URL": f"file://{work / 'jwks.json'}",
            "PAYMENT_JWT_ISSUER": ISSUER,
            "PAYMENT_JWT_AUDIENCE": AUDIENCE,
            "PAYMENT_DB_POOL_MAX": "10",
            "PAYMENT_LOG_LEVEL": "WARNING",
            **({"PAYMENT_REDIS_URL": rd.url} if rd is not None else {}),
        }
        server = start_server(env, work, port)
        base = f"http://127.0.0.1:{port}"
        token = signer.token("payment_operator", exp=int(time.time()) + 3600)
        run = {
            "path": "/api/v1/payments",
            "body": PAYMENT_BODY,
            "ctype": "application/json",
            "auth": f"Bearer {token}",
        }
        wrk(base, seconds=3, **run)  # warm-up
        cpu0 = cpu_seconds(server.pid)
        peak = wrk(base, seconds=DURATION, **run)
        cpu_ms = (cpu_seconds(server.pid) - cpu0) * 1000 / max(1, peak.requests)

        # Paced: each connection waits delay() before each request; one correction.
        target = PACED_SHARE * peak.rate
        cycle_ms = CONCURRENCY * 1000 / target
        first = wrk(base, seconds=DURATION / 2, delay_ms=cycle_ms, **run)
        latency_ms = CONCURRENCY * 1000 / first.rate - cycle_ms
        paced = wrk(base, seconds=DURATION, delay_ms=max(0, cycle_ms - latency_ms), **run)
        profile = profile_phase(server, base, run, work) if PROFILE != "0" else []
        stop_server(server)
        server = None

        stripe_cpu0 = cpu_seconds(sm.pid) if sm.pid else 0.0
        stripe = wrk(
            sm.api_base,
            path="/v1/payment_intents",
            body=INTENT_BODY,
            ctype="application/x-www-form-urlencoded",
            auth="Bearer sk_test_bench",
            extra=f"Stripe-Version: {STRIPE_API_VERSION}",
            seconds=DURATION,
        )
        stripe_cpu_ms = (
            ((cpu_seconds(sm.pid) - stripe_cpu0) * 1000 / max(1, stripe.requests))
            if sm.pid
            else 0.0
        )
        tps, pg_lat = pgbench(dsn, work)

        lines = [
            f"payment-runtime POST /api/v1/payments, max: {peak.line()}; server CPU {cpu_ms:.2f} ms/payment",
            f"payment-runtime at ~70% of max:           {paced.line()}",
            f"pgbench, the same SQL transaction:       {tps:.0f} tx/s, latency avg {pg_lat} ms",
            f"stripe-mock POST /v1/payment_intents:     {stripe.line()}; stripe-mock CPU {stripe_cpu_ms:.2f} ms/call",
            f"ratio runtime/pgbench: {peak.rate / tps:.3f}; runtime/stripe-mock: {peak.rate / stripe.rate:.3f}",
        ]
        if RISK:
            lines += risk_compare(env, work, run, rd)
        for line in lines:
            print(line)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Payment runtime benchmark (`python -m bench.runtime`)\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
            f"(load average before the run: {load_before:.2f}), wrk -t{THREADS} "
            f"-c{CONCURRENCY}, {DURATION:.0f} s per phase.\n\n"
            + "".join(f"- {line.strip()}\n" for line in lines)
            + "".join(f"{line}\n" for line in profile)
        )
        return 0
    finally:
        if server is not None:
            stop_server(server)
        if rd is not None:
            rd.close()
        sm.stop()
        pg.close()


if __name__ == "__main__":
    raise SystemExit(main())
