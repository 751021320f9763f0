"""Loopback networking helpers shared by the test bed's servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port free right now (bind-and-release; callers retry on a lost race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
