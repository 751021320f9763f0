"""The runtime bench's risk-check rounds: each pair back to back, its order alternating (pure)."""

import pytest

from bench.runtime.run import risk_order

pytestmark = pytest.mark.unit


def test_rounds_alternate_which_variant_goes_first():
    assert risk_order(4) == ["off", "on", "on", "off", "off", "on", "on", "off"]
    assert risk_order(1) == ["off", "on"]
