"""The `kubectl paydeck get` screen, rendered from status objects (no cluster)."""

from __future__ import annotations

import pytest
from payment_operator.cli import render

from tests.unit.cli.objects import (
    CANARY,
    IMAGE_1,
    IMAGE_2,
    NOW,
    OLD,
    STABLE,
    ago,
    canary_status,
    condition,
    deployment,
    healthy_status,
    job,
    pod,
    service,
)

pytestmark = pytest.mark.unit

STABLE_PODS = [pod(STABLE, f"5f7b9-{s}") for s in ("abcde", "fghij", "klmno", "pqrst")]
CANARY_POD = pod(CANARY, "8c4d2-uvwxy", age=35)


def line(text, label):
    """The header line with this label (its value, stripped)."""
    for row in text.splitlines():
        if row.strip().startswith(f"{label}:"):
            return row.split(":", 1)[1].strip()
    raise AssertionError(f"no {label!r} line in:\n{text}")


def tree(text):
    """The rows of the tree (after the NAME KIND STATUS AGE INFO header)."""
    rows = text.splitlines()
    start = next(i for i, row in enumerate(rows) if row.startswith("NAME "))
    return rows[start + 1:]


def test_paused_canary_whole_screen():
    status = canary_status(
        1, 25, 20, phase="Paused", paused=True,
        message="step 2/4 (pause (until promoted)) at weight 25%: promote to continue")
    status["conditions"][-1] = condition(
        "MigrationsApplied", "True", "Succeeded",
        f"migration Job pay-migrate-{CANARY} succeeded")
    status["command"] = {"action": "promote", "requestedAt": ago(600), "requestedBy": "alice"}
    status["lastHandledCommandAt"] = ago(600)
    ps = service(status, image=IMAGE_2)
    deployments = [deployment(STABLE, 4), deployment(CANARY, 1, image=IMAGE_2, age=40),
                   deployment(OLD, 0, age=7200)]
    text = render.render(ps, deployments, [*STABLE_PODS, CANARY_POD], job(CANARY), now=NOW)
    assert text == """\
Name:                pay
Namespace:           payments
Status:              ॥ Paused
Message:             step 2/4 (pause (until promoted)) at weight 25%: promote to continue
Strategy:            Canary
  Step:              2/4: pause (until promoted)
  SetWeight:         25
  ActualWeight:      20
  Paused:            yes: promote to continue, or abort
Images:              payment-runtime:1 (stable)
                     payment-runtime:2 (canary)
Replicas:
  Desired:           4
  Current:           5
  Updated:           1
  Ready:             5
LastCommand:         promote by alice at 2026-12-01T11:50:00Z (handled)

Gates:
  SecretsReady:      ✔ True  SecretRefs: 2 secrets referenced
  TopicsReady:       ✔ True  NoKafka: no Kafka topics
  MigrationsApplied: ✔ True  Succeeded: migration Job pay-migrate-5b8c4d7e9f succeeded

Analysis:            -

Migration:           ✔ Succeeded  revision 5b8c4d7e9f, Job pay-migrate-5b8c4d7e9f, applied 60s ago
  Job:               Complete (1 succeeded), age 90s

NAME                                   KIND            STATUS        AGE   INFO
⟳ pay                                  PaymentService  ॥ Paused      60m
├──# revision:5b8c4d7e9f                                                   canary
│  └──⧉ pay-5b8c4d7e9f                 Deployment      ✔ Healthy     40s   canary, ready:1/1
│     └──□ pay-5b8c4d7e9f-8c4d2-uvwxy  Pod             ✔ Running     35s   ready:1/1
├──# revision:7d9f8c6b5a                                                   stable
│  └──⧉ pay-7d9f8c6b5a                 Deployment      ✔ Healthy     60m   stable, ready:4/4
│     ├──□ pay-7d9f8c6b5a-5f7b9-abcde  Pod             ✔ Running     60m   ready:1/1
│     ├──□ pay-7d9f8c6b5a-5f7b9-fghij  Pod             ✔ Running     60m   ready:1/1
│     ├──□ pay-7d9f8c6b5a-5f7b9-klmno  Pod             ✔ Running     60m   ready:1/1
│     └──□ pay-7d9f8c6b5a-5f7b9-pqrst  Pod             ✔ Running     60m   ready:1/1
└──# revision:6c8d7f9b4a
   └──⧉ pay-6c8d7f9b4a                 Deployment      • ScaledDown  120m  ready:0/0
"""


def test_healthy_without_canary():
    ps = service(healthy_status())
    text = render.render(ps, [deployment(STABLE, 4), deployment(OLD, 0, age=7200)],
                         STABLE_PODS, None, now=NOW)
    assert line(text, "Status") == "✔ Healthy"
    assert line(text, "Message") == "4/4 replicas ready"
    assert line(text, "Strategy") == "Canary"
    assert line(text, "Step") == "- (no canary in flight; 4 steps)"
    assert line(text, "SetWeight") == "-" and line(text, "ActualWeight") == "-"
    assert line(text, "Images") == f"{IMAGE_1} (stable)"
    assert "(canary)" not in text and "canary" not in "".join(tree(text))
    assert line(text, "Analysis") == "-"
    assert "Paused:" not in text and "Aborted:" not in text and "LastCommand" not in text
    assert line(text, "Desired") == "4" and line(text, "Ready") == "4"
    rows = tree(text)
    assert rows[0].startswith("⟳ pay ") and "✔ Healthy" in rows[0]
    assert rows[1].startswith("├──# revision:" + STABLE) and rows[1].endswith("stable")
    assert "Deployment" in rows[2] and rows[2].endswith("stable, ready:4/4")
    assert sum("Pod" in r for r in rows) == 4
    assert rows[-2] == f"└──# revision:{OLD}"
    assert "• ScaledDown" in rows[-1]
    # The stable revision's migration was done long ago; its Job is gone.
    assert line(text, "Migration").startswith("✔ Succeeded  revision " + STABLE)
    assert "not found" in line(text, "Job")


def test_progressing_at_a_weight_step():
    status = canary_status(0, 25, 0, message="step 1/4 (setWeight 25): canary 0/1 ready, "
                                             "stable 4/4 ready")
    ps = service(status, image=IMAGE_2)
    waiting = pod(CANARY, "8c4d2-uvwxy", ready=False, age=3, waiting="ContainerCreating")
    text = render.render(ps, [deployment(STABLE, 4), deployment(CANARY, 1, 0, IMAGE_2, 3)],
                         [*STABLE_PODS, waiting], None, now=NOW)
    assert line(text, "Status") == "◌ Progressing"
    assert line(text, "Step") == "1/4: setWeight 25"
    assert line(text, "SetWeight") == "25" and line(text, "ActualWeight") == "0"
    assert f"{IMAGE_2} (canary)" in text and f"{IMAGE_1} (stable)" in text
    rows = tree(text)
    assert rows[1].endswith("canary") and CANARY in rows[1]  # the canary comes first
    assert "◌ Progressing" in rows[2] and rows[2].endswith("canary, ready:0/1")
    assert "◌ ContainerCreating" in rows[3] and rows[3].endswith("ready:0/1")
    assert "3s" in rows[3]


def test_promoting_after_the_last_step():
    ps = service(canary_status(4, 50, 50), image=IMAGE_2)
    assert line(render.render(ps, now=NOW), "Step") == "4/4: all steps done: promoting"


def test_paused_analysis_inconclusive_and_pause_durations():
    steps = [{"setWeight": 10}, {"pause": {"duration": "30s"}}, {"analysis": {}}]
    ps = service(canary_status(1, 10, 20), steps=steps, image=IMAGE_2)
    assert line(render.render(ps, now=NOW), "Step") == "2/3: pause 30s"
    ps = service(canary_status(2, 10, 20, phase="Paused", paused=True), steps=steps)
    text = render.render(ps, now=NOW)
    assert line(text, "Step") == "3/3: analysis"
    assert line(text, "Paused").startswith("yes")


def test_degraded_after_abort_shows_the_reason_and_the_handled_command():
    status = canary_status(
        3, 50, 0, phase="Degraded", aborted=True, abortReason="AbortCommand: aborted by alice",
        message=f"rollout of revision {CANARY} aborted (AbortCommand: aborted by alice); "
                "retry or change the spec")
    status["conditions"].append(condition("Degraded", "True", "AbortCommand", "aborted"))
    status["command"] = {"action": "abort", "requestedAt": ago(20), "requestedBy": "alice"}
    status["lastHandledCommandAt"] = ago(20)
    ps = service(status, image=IMAGE_2)
    text = render.render(ps, [deployment(STABLE, 4), deployment(CANARY, 0, image=IMAGE_2)],
                         STABLE_PODS, None, now=NOW)
    assert line(text, "Status") == "✖ Degraded"
    assert "aborted (AbortCommand: aborted by alice)" in line(text, "Message")
    assert line(text, "Aborted") == "AbortCommand: aborted by alice"
    assert line(text, "LastCommand") == "abort by alice at 2026-12-01T11:59:40Z (handled)"
    rows = tree(text)
    assert rows[1].endswith("canary") and "• ScaledDown" in rows[2]
    assert "✖ Degraded" in rows[0]


def test_a_command_not_handled_yet_is_pending():
    status = canary_status(1, 25, 20, phase="Paused", paused=True)
    status["command"] = {"action": "promote", "requestedAt": ago(5), "requestedBy": "bob"}
    status["lastHandledCommandAt"] = ago(600)
    text = render.render(service(status), now=NOW)
    assert line(text, "LastCommand") == "promote by bob at 2026-12-01T11:59:55Z (pending)"


def test_analysis_with_metrics():
    status = canary_status(3, 50, 50, message="step 4/4 (analysis (5 measurements)): measuring")
    status["canary"]["analysis"] = {
        "phase": "Running", "measurements": 3, "successes": 2, "failures": 1,
        "inconclusive": 0, "consecutiveErrors": 1, "startedAt": ago(20),
        "lastMeasuredAt": ago(2), "message": "success 0.97 within [0.95, ∞)",
        "metrics": [
            {"name": "success", "value": "0.97", "phase": "Successful",
             "message": "0.97 >= 0.95", "measuredAt": ago(2)},
            {"name": "latency-p99", "phase": "Error", "message": "connection refused",
             "measuredAt": ago(4)},
        ],
    }
    text = render.render(service(status, image=IMAGE_2), now=NOW)
    assert line(text, "Step") == "4/4: analysis (5 measurements)"
    assert line(text, "Analysis") == "◌ Running"
    assert line(text, "Measurements") == (
        "3 (2 successful, 1 failed, 0 inconclusive, 1 errors in a row)")
    assert line(text, "Started") == "20s ago" and line(text, "LastMeasured") == "2s ago"
    rows = text.splitlines()
    head = rows.index("  Metrics:")
    assert rows[head + 1].split() == ["NAME", "VALUE", "PHASE", "MEASURED", "MESSAGE"]
    assert rows[head + 2].split() == ["success", "0.97", "✔", "Successful", "2s", "ago",
                                      "0.97", ">=", "0.95"]
    assert rows[head + 3].split()[:5] == ["latency-p99", "(no", "data)", "⚠", "Error"]
    assert rows[head + 3].endswith("connection refused")


def test_failed_analysis_before_per_metric_status():
    """An operator without per-metric status: counters still add up, no Metrics table."""
    status = canary_status(3, 50, 0, phase="Degraded", aborted=True,
                           abortReason="AnalysisFailed: analysis failed: success 0.5 < 0.95")
    status["canary"]["analysis"] = {"phase": "Failed", "successes": 2, "failures": 2,
                                    "startedAt": ago(60), "message": "success 0.5 < 0.95"}
    text = render.render(service(status), now=NOW)
    assert line(text, "Analysis") == "✖ Failed"
    assert line(text, "Measurements") == "4 (2 successful, 2 failed, 0 inconclusive)"
    assert "Metrics:" not in text and "LastMeasured" not in text
    assert line(text, "Aborted").startswith("AnalysisFailed: ")


def test_failed_migration():
    message = "BackoffLimitExceeded: Job has reached the specified backoff limit"
    status = canary_status(
        0, 0, 0, phase="Degraded", aborted=True,
        abortReason=f"MigrationFailed: migration Job pay-migrate-{CANARY} failed ({message})",
        migration={"revision": CANARY, "job": f"pay-migrate-{CANARY}", "phase": "Failed",
                   "message": message})
    status["conditions"][-1] = condition(
        "MigrationsApplied", "False", "JobFailed",
        f"migration Job pay-migrate-{CANARY} failed: {message}")
    ps = service(status, image=IMAGE_2)
    text = render.render(ps, [deployment(STABLE, 4)], STABLE_PODS, job(CANARY, failed=True),
                         now=NOW)
    assert line(text, "Migration") == (
        f"✖ Failed  revision {CANARY}, Job pay-migrate-{CANARY}: {message}")
    assert line(text, "Job") == (
        "Failed (BackoffLimitExceeded: Job has reached the specified backoff limit), age 90s")
    assert line(text, "MigrationsApplied") == (
        f"✖ False JobFailed: migration Job pay-migrate-{CANARY} failed: {message}")
    assert line(text, "SecretsReady").startswith("✔ True")
    rows = tree(text)
    # The canary has no Deployment: no pod of it before its migration succeeded.
    assert rows[1].startswith(f"├──# revision:{CANARY} ") and rows[1].endswith("canary")
    assert rows[2] == "│  └──(no Deployment yet)"


def test_running_migration_job():
    running = job(CANARY)
    running["status"] = {"active": 1}
    status = canary_status(0, 0, 0, migration={"revision": CANARY, "job": f"pay-migrate-{CANARY}",
                                                "phase": "Running"})
    text = render.render(service(status), job=running, now=NOW)
    assert line(text, "Migration").startswith("◌ Running  revision")
    assert line(text, "Job") == "Running (1 active), age 90s"


def test_disabled_migrations_and_no_canary_strategy():
    ps = service(healthy_status(migration=None), steps=None)
    ps["spec"]["database"]["migrations"] = {"enabled": False}
    text = render.render(ps, now=NOW)
    assert line(text, "Migration") == "disabled"
    assert line(text, "Strategy") == "Rolling (no canary steps)"


def test_new_object_without_status():
    text = render.render(service(None), now=NOW)
    assert line(text, "Status") == "◌ Pending (no status yet)"
    assert line(text, "Images") == f"{IMAGE_1} (spec, not rolled out yet)"
    assert line(text, "TopicsReady") == "? (not reported)"
    assert tree(text) == ["⟳ pay  PaymentService  ◌ Pending  60m"]


def test_generation_not_observed_yet():
    ps = service(healthy_status(), image=IMAGE_2, generation=3)
    text = render.render(ps, now=NOW)
    assert line(text, "Generation").startswith("3 (status is of generation 2")
    assert f"{IMAGE_2} (spec, not rolled out yet)" in text


def test_pod_states():
    crash = pod(CANARY, "a", ready=False, waiting="CrashLoopBackOff", restarts=4)
    assert render.pod_status(crash) == "CrashLoopBackOff"
    text = render.render(service(canary_status(0, 25, 0)), [deployment(CANARY, 1, 0)],
                         [crash], now=NOW)
    row = next(r for r in tree(text) if "Pod" in r)
    assert row.endswith("✖ CrashLoopBackOff  60m  ready:0/1, restarts:4")
    gone = pod(CANARY, "b")
    gone["metadata"]["deletionTimestamp"] = ago(1)
    assert render.pod_status(gone) == "Terminating"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (185, "3m5s"), (600, "10m"),
    (3600, "60m"), (3 * 3600, "3h"), (3 * 3600 + 300, "3h5m"), (30 * 3600, "30h"),
    (3 * 86400 + 7200, "3d2h"), (20 * 86400, "20d"), (800 * 86400, "2y"), (-5, "0s"),
])
def test_ages_like_kubectl(seconds, text):
    assert render.human_duration(seconds) == text


def test_malformed_fields_do_not_break_the_screen():
    status = {"phase": "Weird", "canaryRevision": CANARY,
              "canary": {"stepIndex": "x", "analysis": "oops"}, "conditions": ["bad"],
              "migration": {"phase": "Running"}, "command": {"action": "promote"}}
    text = render.render(service(status), [{"metadata": {}}], [{}], {}, now=NOW)
    assert line(text, "Status") == "? Weird"
    assert line(text, "Step") == "1/4: setWeight 25"
    assert render.parse_time("not a time") is None


def test_the_rate_table_gate_shows_only_when_reported():
    assert "CurrencyRatesReady" not in render.render(service(healthy_status()), now=NOW)
    status = healthy_status()
    status["conditions"].append({
        "type": "CurrencyRatesReady", "status": "False", "reason": "ConfigMapMissing",
        "message": "ConfigMap fx (the rate table of spec.currencies) does not exist"})
    text = render.render(service(status), now=NOW)
    assert line(text, "CurrencyRatesReady").startswith("✖ False")
    assert "ConfigMapMissing" in line(text, "CurrencyRatesReady")
