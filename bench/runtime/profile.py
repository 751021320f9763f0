"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the runtime server.

Each line of the file is ``frame;frame;...;frame COUNT``, outermost first. A sample is charged
to the first *bucket* (a library or our own package) found walking the stack from the
innermost frame outwards, so "stripe" means CPU spent in the SDK's own code, not in the httpx
it calls. ``python -m bench.runtime.profile FILE [--operator]`` prints the buckets, largest
first (the operator's for a profile of ``bench.operator_scale``).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# (bucket, the start of a frame's file path as py-spy prints it: "func (path:line)");
# the first match wins, innermost frame first.
BUCKETS = [
    ("import (request path)", "(<frozen importlib._bootstrap"),
    ("h11 (HTTP parsing)", "(h11/"),
    ("httptools / uvicorn", "(uvicorn/"),
    ("httpx / httpcore (Stripe transport)", "(httpcore/"),
    ("httpx / httpcore (Stripe transport)", "(httpx/"),
    ("aiohttp (Stripe transport)", "(aiohttp/"),
    ("stripe SDK", "(stripe/"),
    ("PyJWT / cryptography (token)", "(jwt/"),
    ("psycopg / psycopg_pool", "(psycopg"),
    ("redis-py (risk checks)", "(redis/"),
    ("starlette", "(starlette/"),
    ("pydantic", "(pydantic"),
    ("prometheus_client", "(prometheus_client/"),
    ("json", "(json/"),
    ("logging", "(logging/"),
    ("asyncio / uvloop", "(asyncio/"),
    ("payment_runtime", "(payment_runtime/"),
]


#: The operator's buckets (``BENCH_PROFILE=FILE python -m bench.operator_scale``).
OPERATOR_BUCKETS = [
    ("import", "(<frozen importlib._bootstrap"),
    ("kubernetes client: (de)serialisation", "(kubernetes/client/api_client"),
    ("kubernetes client", "(kubernetes/"),
    ("urllib3 / ssl (API requests)", "(urllib3/"),
    ("urllib3 / ssl (API requests)", "(ssl.py"),
    ("aiohttp (Kopf's watches and patches)", "(aiohttp/"),
    ("kopf", "(kopf/"),
    ("pydantic (the PaymentService model)", "(pydantic"),
    ("jinja2", "(jinja2/"),
    ("json", "(json/"),
    ("yaml", "(yaml/"),
    ("copy", "(copy.py"),
    ("logging", "(logging/"),
    ("asyncio", "(asyncio/"),
    ("concurrent.futures / threading", "(concurrent/"),
    ("concurrent.futures / threading", "(threading.py"),
    ("payment_operator: builders", "(payment_operator/builders/"),
    ("payment_operator: kube (apply, cache, drift)", "(payment_operator/kube/"),
    ("payment_operator: rollout", "(payment_operator/rollout/"),
    ("payment_operator", "(payment_operator/"),
]


def bucket_of(stack: str, buckets: list[tuple[str, str]] = BUCKETS) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needle in buckets:
            if needle in frame:
                return name
    return "other"


def summarise(text: str, buckets: list[tuple[str, str]] = BUCKETS) -> list[tuple[str, int, float]]:
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[bucket_of(stack, buckets)] += int(n)
    total = sum(counts.values()) or 1
    return [(name, n, n / total) for name, n in counts.most_common()]


def main(argv: list[str]) -> int:
    """``FILE [--operator]``: the runtime's buckets, or the operator's."""
    buckets = OPERATOR_BUCKETS if "--operator" in argv[1:] else BUCKETS
    for name, n, share in summarise(Path(argv[0]).read_text(), buckets):
        print(f"{share:6.1%}  {n:7d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
