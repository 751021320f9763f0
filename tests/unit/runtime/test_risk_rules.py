"""The pure rules of the risk checks: velocity keys and arguments, rate-limit headers,
the settings' bounds, and the refused outcome in the metrics."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from payment_runtime.api.app import _outcome_label
from payment_runtime.domain import ratelimit, velocity
from payment_runtime.metrics import PAYMENT_OUTCOMES
from payment_runtime.settings import Settings

pytestmark = pytest.mark.unit

ATTEMPT = velocity.Attempt("client-1", "key-1", "cust_42", "pm_card_visa", "EUR", 1250)


def _limit(**values: object) -> velocity.VelocityLimit:
    return velocity.VelocityLimit.model_validate(values)


def test_keys_hash_the_subject_of_each_scope_and_never_show_it() -> None:
    limits = (
        _limit(scope="customer", window_seconds=60, max_attempts=3),
        _limit(scope="payment_method", window_seconds=3600, max_amount={"EUR": 10_000}),
        _limit(scope="client", window_seconds=60, max_attempts=100),
    )
    check = velocity.check("p:", limits, ATTEMPT)
    windows = [
        f"p:vel:customer:60:n:{velocity.digest('cust_42')}",
        f"p:vel:payment_method:3600:a:{velocity.digest('pm_card_visa')}",
        f"p:vel:client:60:n:{velocity.digest('client-1')}",
    ]
    assert check.keys == [k for w in windows for k in (w, f"{w}:sum")]
    text = json.dumps([check.keys, check.args])
    assert "cust_42" not in text and "pm_card_visa" not in text and "key-1" not in text
    # member, currency, amount, then window ms / max attempts / max amount per limit
    assert check.args[1:] == ["EUR", 1250, "60000,3,-1;3600000,-1,10000;60000,100,-1"]
    assert str(check.args[0]).endswith(":EUR:1250")


def test_an_amount_limit_binds_only_its_currencies_but_sums_every_one() -> None:
    limit = _limit(scope="customer", window_seconds=60, max_amount={"USD": 500})
    assert velocity.check("", (limit,), ATTEMPT).args[3:] == [f"60000,-1,{velocity.TRACK_ONLY}"]


def test_the_same_key_is_the_same_member_and_another_key_another() -> None:
    retry = velocity.Attempt("client-1", "key-1", "cust_42", "pm_card_visa", "EUR", 1250)
    other = velocity.Attempt("client-1", "key-2", "cust_42", "pm_card_visa", "EUR", 1250)
    other_client = velocity.Attempt("client-2", "key-1", "cust_42", "pm_card_visa", "EUR", 1250)
    assert velocity.member(retry) == velocity.member(ATTEMPT)
    assert velocity.member(other) != velocity.member(ATTEMPT)
    assert velocity.member(other_client) != velocity.member(ATTEMPT)


def test_decision_names_the_refusing_limit_and_rounds_retry_up() -> None:
    limits = (
        _limit(scope="customer", window_seconds=60, max_attempts=3),
        _limit(scope="client", window_seconds=10, max_attempts=1),
    )
    assert velocity.decision(limits, [0, 0]).admitted
    refused = velocity.decision(limits, [2, 1001])
    assert not refused.admitted and refused.limit is limits[1]
    assert refused.retry_after_seconds == 2
    assert velocity.decision(limits, [1, 0]).retry_after_seconds == 1


@pytest.mark.parametrize(
    "values",
    [
        {"scope": "customer", "window_seconds": 60},  # limits nothing
        {"scope": "customer", "window_seconds": 0, "max_attempts": 1},
        {"scope": "customer", "window_seconds": 604_801, "max_attempts": 1},
        {"scope": "customer", "window_seconds": 60, "max_attempts": 0},
        {"scope": "customer", "window_seconds": 60, "max_amount": {"eur": 5}},
        {"scope": "customer", "window_seconds": 60, "max_amount": {"EUR": 0}},
        {"scope": "card", "window_seconds": 60, "max_attempts": 1},
        {"scope": "customer", "window_seconds": 60, "max_attempts": 1, "extra": 1},
    ],
)
def test_invalid_limits_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        velocity.VelocityLimit.model_validate(values)


def test_usage_headers_count_down_and_retry_after_only_when_refused() -> None:
    quota = ratelimit.Quota(requests=3, window_seconds=60)
    first = ratelimit.usage(quota, [1, 60_000])
    assert first.allowed
    assert first.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "60",
        "RateLimit-Policy": "3;w=60",
    }
    last = ratelimit.usage(quota, [3, 1_500])
    assert last.allowed and last.headers()["RateLimit-Remaining"] == "0"
    assert last.headers()["RateLimit-Reset"] == "2"
    over = ratelimit.usage(quota, [7, 400])
    assert not over.allowed
    assert over.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": "3;w=60",
        "Retry-After": "1",
    }
    # A key without expiry (it cannot happen) reads as a whole window, never as 0 s.
    assert ratelimit.usage(quota, [1, -1]).reset_seconds == 60
    assert "client-1" not in ratelimit.key("p:", "client-1")


def test_settings_parse_limits_from_json_and_bound_the_risk_settings(monkeypatch) -> None:
    monkeypatch.setenv(
        "PAYMENT_VELOCITY_LIMITS",
        '[{"scope": "customer", "window_seconds": 3600, "max_attempts": 10}]',
    )
    settings = Settings()
    assert settings.velocity_limits[0].max_attempts == 10
    assert settings.risk_checks_enabled
    assert not Settings(velocity_limits=[]).risk_checks_enabled
    assert Settings(velocity_limits=[], rate_limit_requests=5).risk_checks_enabled
    for bad in (
        {"redis_timeout_seconds": 0},
        {"redis_timeout_seconds": 10},
        {"rate_limit_requests": 0},
        {"rate_limit_window_seconds": 86_401},
        {"risk_failure_mode": "maybe"},
        {"redis_key_prefix": "has space"},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_a_velocity_refusal_is_its_own_outcome_and_a_decline_stays_one() -> None:
    assert "refused" in PAYMENT_OUTCOMES
    refused = {"error": {"code": velocity.REFUSAL_CODE, "message": "too many"}}
    declined = {"error": {"code": "card_declined", "message": "declined"}}
    assert _outcome_label(402, refused) == "refused"
    assert _outcome_label(402, declined) == "declined"
    assert _outcome_label(429, {"error": {"code": ratelimit.REFUSAL_CODE}}) == "rejected"
    assert _outcome_label(503, {"error": {"code": "risk_checks_unavailable"}}) == "error"
