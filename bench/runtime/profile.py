"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the runtime server.

Each line of the file is ``frame;frame;...;frame COUNT``, outermost first. A sample is charged
to the first *bucket* (a library or our own package) found walking the stack from the
innermost frame outwards, so "stripe" means CPU spent in the SDK's own code, not in the httpx
it calls. ``python -m bench.runtime.profile FILE`` prints the buckets, largest first.
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


def bucket_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needle in BUCKETS:
            if needle in frame:
                return name
    return "other"


def summarise(text: str) -> list[tuple[str, int, float]]:
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[bucket_of(stack)] += int(n)
    total = sum(counts.values()) or 1
    return [(name, n, n / total) for name, n in counts.most_common()]


def main(argv: list[str]) -> int:
    for name, n, share in summarise(Path(argv[0]).read_text()):
        print(f"{share:6.1%}  {n:7d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
