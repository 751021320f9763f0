"""The operator's own Prometheus metrics: reconciles, errors, writes, rollouts and steps."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "paydeck_reconcile_total", "Reconcile passes by trigger and result", ["trigger", "result"]
)
DURATION = Histogram(
    "paydeck_reconcile_duration_seconds", "Duration of reconcile passes", ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("paydeck_reconcile_errors_total", "Failed reconcile passes by reason", ["reason"])
WRITES = Counter("paydeck_child_writes_total", "Children created, updated or pruned", ["action"])
CHILD_EVENTS = Counter(
    "paydeck_child_events_total",
    "Watch events on children, by kind and whether they triggered a pass (reconcile) or only"
    " updated the children's cache (cached)", ["kind", "action"]
)
CHILD_READS = Counter(
    "paydeck_child_reads_total",
    "Children a reconcile pass read, from the watches' cache or with a GET", ["source"]
)
ROLLOUTS = Counter(
    "paydeck_rollouts_total", "Rollouts that ended, by outcome", ["outcome"]
)
STEP_SECONDS = Histogram(
    "paydeck_rollout_step_duration_seconds", "Time canary steps took from start to done",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)


def count_writes(*, created: int, updated: int, pruned: int) -> None:
    """Count the children one pass created, updated and pruned."""
    for action, count in (("create", created), ("update", updated), ("prune", pruned)):
        if count:
            WRITES.labels(action).inc(count)
