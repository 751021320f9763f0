"""Test session wiring: the fixtures of each real component are plugins under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.services",
]
