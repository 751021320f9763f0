"""The reporting-currency conversion: validation of the table, half-even rounding, reload."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_runtime.adapters.fx_rates import RatesFile
from payment_runtime.domain.fx import NoRate, RateTableError, parse_table, to_reporting
from payment_runtime.domain.money import Money

pytestmark = pytest.mark.unit

TABLE = json.dumps({"EUR": "1", "USD": "0.925", "JPY": "0.0061", "BHD": "2.44", "KWD": 3})


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        (1250, "EUR", 1250),  # the reporting currency itself: unchanged
        (1250, "JPY", 762),  # 7.625 EUR: half to even -> 7.62
        (1270, "JPY", 775),  # 7.747 -> 7.75
        (12345, "BHD", 3012),  # 30.1218 -> 30.12
        (1, "USD", 1),  # 0.00925 -> 0.01
        (2, "USD", 2),  # 0.0185 -> 0.02
        (10, "USD", 9),  # 0.0925 -> 0.09
        (1000, "KWD", 300),  # an integer JSON rate
    ],
)
def test_to_reporting_rounds_half_even(amount, code, expected):
    converted = to_reporting(Money.of(amount, code), parse_table(TABLE, "EUR"))
    assert converted == Money.of(expected, "EUR")


def test_half_even_not_half_up():
    table = parse_table('{"USD": "0.5"}', "EUR")
    assert to_reporting(Money.of(1, "USD"), table).amount_minor == 0  # 0.005 -> 0.00
    assert to_reporting(Money.of(3, "USD"), table).amount_minor == 2  # 0.015 -> 0.02
    assert to_reporting(Money.of(5, "USD"), table).amount_minor == 2  # 0.025 -> 0.02


def test_into_a_zero_and_a_three_decimal_reporting_currency():
    jpy = parse_table('{"EUR": "163.5"}', "JPY")
    assert to_reporting(Money.of(1001, "EUR"), jpy) == Money.of(1637, "JPY")  # 1636.635
    bhd = parse_table('{"USD": "0.376"}', "BHD")
    assert to_reporting(Money.of(1250, "USD"), bhd) == Money.of(4700, "BHD")


@given(st.integers(min_value=1, max_value=99_999_999), st.decimals("0.000001", "100000", places=6))
def test_conversion_is_exact_up_to_one_rounding(amount, rate):
    table = parse_table(json.dumps({"USD": str(rate)}), "EUR")
    got = to_reporting(Money.of(amount, "USD"), table).amount_minor
    assert abs(Decimal(got) - Decimal(amount) * rate) <= Decimal("0.5")


def test_missing_rate():
    with pytest.raises(NoRate) as exc:
        to_reporting(Money.of(100, "GBP"), parse_table(TABLE, "EUR"))
    assert exc.value.code == "GBP"


@pytest.mark.parametrize(
    ("text", "reporting", "names"),
    [
        ('{"USD": "0"}', "EUR", "rate of USD"),
        ('{"USD": "-1.2"}', "EUR", "rate of USD"),
        ('{"USD": "NaN"}', "EUR", "rate of USD"),
        ('{"USD": "Infinity"}', "EUR", "rate of USD"),
        ('{"USD": "abc"}', "EUR", "rate of USD"),
        ('{"USD": true}', "EUR", "rate of USD"),
        ('{"USD": null}', "EUR", "rate of USD"),
        ('{"XYZ": "1.1"}', "EUR", "entry 'XYZ'"),
        ('{"usd": "1.1"}', "EUR", "entry 'usd'"),
        ('{"EUR": "1.01"}', "EUR", "entry EUR"),
        ('["USD"]', "EUR", "JSON object"),
        ("USD=1", "EUR", "not a JSON document"),
        ('{"USD": "1"}', "EUROS", "reporting currency"),
    ],
)
def test_invalid_tables_name_the_bad_entry(text, reporting, names):
    with pytest.raises(RateTableError) as exc:
        parse_table(text, reporting)
    assert names in str(exc.value)


def test_rates_file_reloads_a_new_version_and_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text('{"USD": "0.9"}')
    rates = RatesFile(str(path), "EUR")
    assert rates.refresh() is False  # unchanged
    # The kubelet swaps a ConfigMap's files atomically: a new file under the same name.
    new = tmp_path / "new.json"
    new.write_text('{"USD": "0.8"}')
    os.replace(new, path)
    assert rates.refresh() is True
    assert rates.table.rate("USD") == Decimal("0.8")
    broken = tmp_path / "broken.json"
    broken.write_text('{"USD": "-3"}')
    os.replace(broken, path)
    assert rates.refresh() is False
    assert rates.table.rate("USD") == Decimal("0.8")


def test_rates_file_at_startup_names_file_and_entry(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text('{"USD": "0.9", "ABC": "2"}')
    with pytest.raises(RateTableError) as exc:
        RatesFile(str(path), "EUR")
    assert str(path) in str(exc.value) and "'ABC'" in str(exc.value)
    with pytest.raises(RateTableError, match="cannot be read"):
        RatesFile(str(tmp_path / "missing.json"), "EUR")


def test_serve_refuses_to_start_on_a_bad_rate_table_naming_the_entry(tmp_path, monkeypatch, capsys):
    from payment_runtime import cli, logs

    path = tmp_path / "rates.json"
    path.write_text('{"USD": "0.92", "JPY": "-1"}')
    for name, value in {"PAYMENT_DATABASE_URL": "postgresql://x/y",
                        "PAYMENT_STRIPE_API_KEY": "sk_test_x",
                        "PAYMENT_REPORTING_CURRENCY": "EUR",
                        "PAYMENT_FX_RATES_FILE": str(path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(logs, "configure", lambda level: None)  # keep pytest's handlers
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "PAYMENT_FX_RATES_FILE" in err and "rate of JPY" in err and str(path) in err
