"""Test session wiring: the fixtures of each real component are plugins under tests/fixtures/.

SIGTERM (a CI timeout, say) is turned into KeyboardInterrupt so that session fixtures still
tear down their control plane, databases and brokers instead of leaving orphans behind.
"""

import signal


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _interrupt)

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.services",
]
