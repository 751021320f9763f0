"""The built-in ``paymentSuccess`` judge: canary against stable, with statistical tests.

Pure: the provider hands in what Prometheus counted over one window for both revisions
(:class:`SuccessCounts`, :class:`LatencySamples`); this module decides.  Each test is
one-sided and asks "is the canary worse than stable by more than the tolerance?"; a metric
fails only when the p-value is below the significance level, so a small or noisy canary is
not failed on chance, and a canary that is worse within the tolerance passes.

- Success ratio (success / (success + declined + error) payments): a non-inferiority
  two-proportion z-test with the Agresti-Caffo adjustment (one success and one failure added
  to each side), which keeps its standard error above zero when a side is all successes.
- p99 latency: a Mann-Whitney U test (normal approximation, tie-corrected, with continuity
  correction) on per-interval p99 values, the canary's divided by ``1 + maxLatencyIncrease``
  first, as Kayenta's judge uses Mann-Whitney on the two time series.

The normal distribution is the standard library's :class:`statistics.NormalDist`; the
arithmetic around it is a few lines, cheaper for the operator image than numpy and scipy.
Fewer payments (or latency values) than the minimum on either side, or a NaN, is *no data*:
the caller applies ``onNoData``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, median
from typing import Final, Literal

SUCCESS_TEST: Final = "two-proportion z-test (Agresti-Caffo), one-sided"
LATENCY_TEST: Final = "Mann-Whitney U (normal approximation), one-sided"
_NORMAL: Final = NormalDist()

Outcome = Literal["pass", "fail", "no-data"]


@dataclass(frozen=True)
class SuccessCounts:
    """Payments of one revision over the window: successful, and all that count."""

    successes: float
    total: float


@dataclass(frozen=True)
class LatencySamples:
    """Per-interval p99 latencies (seconds) of one revision over the window."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class Judgement:
    """What the judge found for one metric (values None when there were none)."""

    outcome: Outcome
    canary_value: float | None
    stable_value: float | None
    canary_samples: int
    stable_samples: int
    test: str
    p_value: float | None
    reason: str


def success_ratio(
    canary: SuccessCounts,
    stable: SuccessCounts,
    *,
    max_drop: float,
    significance: float,
    min_payments: int,
) -> Judgement:
    """Is the canary's success ratio lower than stable's by more than ``max_drop``?"""
    counts = (canary.successes, canary.total, stable.successes, stable.total)
    n_c, n_s = _count(canary.total), _count(stable.total)
    ratio_c, ratio_s = _ratio(canary), _ratio(stable)
    if not all(math.isfinite(c) for c in counts):
        return _no_data(SUCCESS_TEST, ratio_c, ratio_s, n_c, n_s, "a count is not a number")
    if min(n_c, n_s) < min_payments:
        return _no_data(
            SUCCESS_TEST, ratio_c, ratio_s, n_c, n_s,
            f"fewer than {min_payments} payments on a side (canary {n_c}, stable {n_s})",
        )
    x_c, x_s = min(_count(canary.successes), n_c), min(_count(stable.successes), n_s)
    adj_c, adj_s = (x_c + 1) / (n_c + 2), (x_s + 1) / (n_s + 2)
    se = math.sqrt(adj_c * (1 - adj_c) / (n_c + 2) + adj_s * (1 - adj_s) / (n_s + 2))
    z = (adj_s - adj_c - max_drop) / se
    p = 1 - _NORMAL.cdf(z)
    worse = p < significance
    reason = (
        f"canary {_fmt(ratio_c)} vs stable {_fmt(ratio_s)} (payments {n_c} vs {n_s}), "
        f"p={p:.3g} for a drop over {_fmt(max_drop)}: "
        + ("worse" if worse else "not shown worse")
    )
    return Judgement(
        "fail" if worse else "pass", ratio_c, ratio_s, n_c, n_s, SUCCESS_TEST, p, reason
    )


def p99_latency(
    canary: LatencySamples,
    stable: LatencySamples,
    *,
    max_increase: float,
    significance: float,
    min_samples: int,
) -> Judgement:
    """Is the canary's p99 latency higher than stable's by more than ``max_increase``?

    Intervals without a value (NaN: no request in them) are left out before counting.
    """
    c = [v for v in canary.values if math.isfinite(v)]
    s = [v for v in stable.values if math.isfinite(v)]
    med_c = median(c) if c else None
    med_s = median(s) if s else None
    if min(len(c), len(s)) < min_samples:
        return _no_data(
            LATENCY_TEST, med_c, med_s, len(c), len(s),
            f"fewer than {min_samples} intervals with latency on a side "
            f"(canary {len(c)}, stable {len(s)})",
        )
    p = mann_whitney_greater([v / (1 + max_increase) for v in c], s)
    worse = p < significance
    reason = (
        f"median p99 canary {_fmt(med_c)}s vs stable {_fmt(med_s)}s "
        f"(intervals {len(c)} vs {len(s)}), p={p:.3g} for an increase over "
        f"{_fmt(max_increase * 100)}%: " + ("worse" if worse else "not shown worse")
    )
    return Judgement(
        "fail" if worse else "pass", med_c, med_s, len(c), len(s), LATENCY_TEST, p, reason
    )


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value of the Mann-Whitney U test for "``x`` tends to be greater than ``y``".

    Normal approximation with the tie correction and a continuity correction of 0.5; all
    values equal gives 1 (no evidence either way).
    """
    n_x, n_y = len(x), len(y)
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    rank_sum = sum(r for r, (_, side) in zip(ranks, pooled, strict=True) if side == 0)
    u = rank_sum - n_x * (n_x + 1) / 2
    n = n_x + n_y
    variance = n_x * n_y / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n_x * n_y / 2 - 0.5) / math.sqrt(variance)
    return 1 - _NORMAL.cdf(z)


def _no_data(
    test: str, c: float | None, s: float | None, n_c: int, n_s: int, why: str
) -> Judgement:
    return Judgement("no-data", c, s, n_c, n_s, test, None, why)


def _count(value: float) -> int:
    """A counter increase as a whole number (Prometheus extrapolates: 99.7 is 100)."""
    return max(0, round(value)) if math.isfinite(value) else 0


def _ratio(counts: SuccessCounts) -> float | None:
    if not (math.isfinite(counts.total) and math.isfinite(counts.successes)):
        return math.nan
    total = _count(counts.total)
    return None if total == 0 else min(_count(counts.successes), total) / total


def _fmt(value: float | None) -> str:
    if value is None:
        return "none"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"
