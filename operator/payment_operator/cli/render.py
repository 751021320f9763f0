"""The ``kubectl paydeck get`` screen, as a pure function: objects in, text out.

:func:`render` takes the PaymentService, its revision Deployments and pods and the migration
Job exactly as the API server returns them (camelCase dicts) and the time to measure ages
against.  Every field may be missing (no status yet, an older or newer operator): the view
says so instead of failing.  The layout follows ``kubectl argo rollouts get rollout``: a
header, the gates, the analysis and the migration, then the tree of revisions and pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from payment_operator.builders.meta import LABEL_REVISION

Obj = Mapping[str, Any]

GATES = ("SecretsReady", "TopicsReady", "MigrationsApplied")
#: Gates the operator reports only when the spec asks for them (spec.currencies' rate table).
OPTIONAL_GATES = ("CurrencyRatesReady",)

PHASE_ICONS = {"Healthy": "✔", "Progressing": "◌", "Paused": "॥", "Degraded": "✖",
               "Pending": "◌"}
CONDITION_ICONS = {"True": "✔", "False": "✖"}
RESULT_ICONS = {"Running": "◌", "Successful": "✔", "Succeeded": "✔", "Failed": "✖",
                "Inconclusive": "?", "Error": "⚠"}

LABEL_WIDTH = 21


# ---- small helpers --------------------------------------------------------------------------


def dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None as soon as a level is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (None when absent or malformed)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages: 45s, 3m12s, 25m, 2h5m, 5h, 3d4h, 12d, 2y."""
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(value: Any, now: datetime) -> str:
    """How long ago a timestamp was ("" when there is none)."""
    then = parse_time(value)
    return "" if then is None else human_duration((now - then).total_seconds())


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def describe_step(step: Obj) -> str:
    """A canary step in a few words (as the operator's messages and Events word it)."""
    if step.get("setWeight") is not None:
        return f"setWeight {step['setWeight']}"
    if "pause" in step:
        duration = dig(step, "pause", "duration")
        return f"pause {duration}" if duration else "pause (until promoted)"
    if "analysis" in step:
        count = dig(step, "analysis", "count")
        return f"analysis ({count} measurements)" if count else "analysis"
    return "(unknown step)"


def steps_of(ps: Obj) -> list[Obj]:
    steps = dig(ps, "spec", "rollout", "canary", "steps")
    return [s for s in steps if isinstance(s, Mapping)] if isinstance(steps, list) else []


def step_position(ps: Obj) -> tuple[int, int, str] | None:
    """(1-based step, number of steps, description) of the canary in flight, else None."""
    status = ps.get("status") or {}
    if not status.get("canaryRevision"):
        return None
    steps = steps_of(ps)
    index = _int(dig(status, "canary", "stepIndex"))
    if not steps:
        return 0, 0, "no steps"
    if index >= len(steps):
        return len(steps), len(steps), "all steps done: promoting"
    return index + 1, len(steps), describe_step(steps[index])


def phase_text(phase: Any) -> str:
    if not phase:
        return "◌ Pending (no status yet)"
    return f"{PHASE_ICONS.get(str(phase), '?')} {phase}"


def _field(label: str, value: Any, indent: int = 0) -> str:
    head = " " * indent + label + ":"
    return f"{head.ljust(max(LABEL_WIDTH, len(head) + 1))}{value}".rstrip()


def _continuation(value: str) -> str:
    return " " * LABEL_WIDTH + value


def _table(rows: Sequence[Sequence[str]], indent: int = 0) -> list[str]:
    """Rows as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (" " * indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        .rstrip()
        for row in rows
    ]


def _say(head: str, message: Any) -> str:
    """``head: message`` unless the message only repeats the head."""
    text = str(message or "").strip()
    return head if not text or text == head else f"{head}: {text}" if head else text


# ---- the header -----------------------------------------------------------------------------


def _header(ps: Obj) -> list[str]:
    meta = ps.get("metadata") or {}
    status = ps.get("status") or {}
    spec = ps.get("spec") or {}
    lines = [
        _field("Name", meta.get("name", "")),
        _field("Namespace", meta.get("namespace", "")),
        _field("Status", phase_text(status.get("phase"))),
    ]
    if status.get("message"):
        lines.append(_field("Message", status["message"]))
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and generation != observed:
        lines.append(_field("Generation", f"{generation} (status is of generation {observed}: "
                                          "the operator has not caught up yet)"))
    lines += _strategy(ps)
    lines += _images(spec, status)
    lines += [
        "Replicas:",
        _field("Desired", spec.get("replicas", "-"), 2),
        _field("Current", status.get("replicas", 0), 2),
        _field("Updated", status.get("updatedReplicas", 0), 2),
        _field("Ready", status.get("readyReplicas", 0), 2),
    ]
    command = _command(status)
    if command:
        lines.append(_field("LastCommand", command))
    return lines


def _strategy(ps: Obj) -> list[str]:
    status = ps.get("status") or {}
    canary = status.get("canary") or {}
    steps = steps_of(ps)
    if dig(ps, "spec", "rollout", "canary") is None:
        lines = [_field("Strategy", "Rolling (no canary steps)")]
    else:
        lines = [_field("Strategy", "Canary")]
    position = step_position(ps)
    if position is None:
        lines.append(_field("Step", f"- (no canary in flight; {len(steps)} steps)", 2))
        lines.append(_field("SetWeight", "-", 2))
        lines.append(_field("ActualWeight", "-", 2))
        return lines
    number, total, description = position
    lines.append(_field("Step", f"{number}/{total}: {description}", 2))
    lines.append(_field("SetWeight", canary.get("weight", 0), 2))
    lines.append(_field("ActualWeight", canary.get("actualWeight", 0), 2))
    if canary.get("paused"):
        lines.append(_field("Paused", "yes: promote to continue, or abort", 2))
    if canary.get("aborted"):
        lines.append(_field("Aborted", canary.get("abortReason") or "yes", 2))
    return lines


def _images(spec: Obj, status: Obj) -> list[str]:
    images: list[str] = []
    stable, canary = status.get("stableImage"), status.get("canaryImage")
    if stable:
        images.append(f"{stable} (stable)")
    if status.get("canaryRevision"):
        images.append(f"{canary or spec.get('image', '?')} (canary)")
    wanted = spec.get("image")
    if wanted and wanted not in (stable, canary if status.get("canaryRevision") else None):
        images.append(f"{wanted} (spec, not rolled out yet)")
    if not images:
        return [_field("Images", "-")]
    return [_field("Images", images[0]), *(_continuation(i) for i in images[1:])]


def _command(status: Obj) -> str:
    command = status.get("command") or {}
    if not command.get("action"):
        return ""
    requested = parse_time(command.get("requestedAt"))
    handled = parse_time(status.get("lastHandledCommandAt"))
    state = "handled" if requested and handled and handled >= requested else "pending"
    return (f"{command['action']} by {command.get('requestedBy') or 'unknown'} at "
            f"{command.get('requestedAt', '?')} ({state})")


# ---- gates, analysis, migration -------------------------------------------------------------


def _conditions(status: Obj) -> dict[str, Obj]:
    items = status.get("conditions") or []
    return {str(c.get("type")): c for c in items if isinstance(c, Mapping)}


def _gates(status: Obj) -> list[str]:
    conditions = _conditions(status)
    lines = ["Gates:"]
    for gate in (*GATES, *(g for g in OPTIONAL_GATES if g in conditions)):
        cond = conditions.get(gate)
        if cond is None:
            lines.append(_field(gate, "? (not reported)", 2))
            continue
        value = str(cond.get("status", "Unknown"))
        icon = CONDITION_ICONS.get(value, "?")
        lines.append(_field(gate, f"{icon} {value:<5} "
                            + _say(str(cond.get("reason") or ""), cond.get("message")), 2))
    return lines


def _analysis(status: Obj, now: datetime) -> list[str]:
    run = dig(status, "canary", "analysis")
    if not isinstance(run, Mapping) or not run:
        return [_field("Analysis", "-")]
    phase = run.get("phase") or "Running"
    successes, failures = _int(run.get("successes")), _int(run.get("failures"))
    inconclusive = _int(run.get("inconclusive"))
    taken = _int(run.get("measurements"), successes + failures + inconclusive)
    counters = f"{taken} ({successes} successful, {failures} failed, {inconclusive} inconclusive"
    if run.get("consecutiveErrors") is not None:
        counters += f", {_int(run.get('consecutiveErrors'))} errors in a row"
    lines = [
        _field("Analysis", f"{RESULT_ICONS.get(str(phase), '?')} {phase}"),
        _field("Measurements", counters + ")", 2),
    ]
    if run.get("startedAt"):
        lines.append(_field("Started", f"{age(run['startedAt'], now)} ago", 2))
    if run.get("lastMeasuredAt"):
        lines.append(_field("LastMeasured", f"{age(run['lastMeasuredAt'], now)} ago", 2))
    if run.get("message"):
        lines.append(_field("Message", run["message"], 2))
    metrics = [m for m in run.get("metrics") or [] if isinstance(m, Mapping)]
    if metrics:
        lines.append("  Metrics:")
        rows = [("NAME", "VALUE", "PHASE", "MEASURED", "MESSAGE")]
        for m in metrics:
            value = m.get("value")
            measured = age(m.get("measuredAt"), now)
            mphase = str(m.get("phase") or "?")
            rows.append((
                str(m.get("name", "?")),
                "(no data)" if value is None else str(value),
                f"{RESULT_ICONS.get(mphase, '?')} {mphase}",
                f"{measured} ago" if measured else "-",
                str(m.get("message") or ""),
            ))
        lines += _table(rows, indent=4)
    return lines


def job_state(job: Obj) -> str:
    """A Job's state in a few words: Complete, Failed (with its reason), Running, ..."""
    if dig(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if not isinstance(cond, Mapping) or cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return f"Complete ({_int(status.get('succeeded'))} succeeded)"
        if cond.get("type") == "Failed":
            return "Failed (" + _say(str(cond.get("reason") or "failed"),
                                     cond.get("message")) + ")"
    active = _int(status.get("active"))
    failed = _int(status.get("failed"))
    text = f"Running ({active} active" if active else "Pending (no pod running"
    return text + (f", {failed} failed)" if failed else ")")


def _migration(ps: Obj, job: Obj | None, now: datetime) -> list[str]:
    status = ps.get("status") or {}
    migration = status.get("migration") or {}
    enabled = dig(ps, "spec", "database", "migrations", "enabled") is not False
    if not migration.get("phase"):
        return [_field("Migration", "-" if enabled else "disabled")]
    phase = str(migration["phase"])
    what = f"revision {migration.get('revision', '?')}, Job {migration.get('job') or '?'}"
    if phase == "Succeeded" and migration.get("appliedAt"):
        what += f", applied {age(migration['appliedAt'], now)} ago"
    if migration.get("message"):
        what += f": {migration['message']}"
    lines = [_field("Migration", f"{RESULT_ICONS.get(phase, '?')} {phase}  {what}")]
    if job is not None:
        created = age(dig(job, "metadata", "creationTimestamp"), now)
        lines.append(_field("Job", job_state(job) + (f", age {created}" if created else ""), 2))
    elif migration.get("job"):
        lines.append(_field("Job", "not found (deleted after it finished, or not created yet)",
                            2))
    return lines


# ---- the tree -------------------------------------------------------------------------------


def pod_status(pod: Obj) -> str:
    """The STATUS column of ``kubectl get pods``, roughly."""
    if dig(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for cs in status.get("initContainerStatuses") or []:
        waiting = dig(cs, "state", "waiting", "reason")
        if waiting and waiting != "PodInitializing":
            return f"Init:{waiting}"
    for cs in reversed(status.get("containerStatuses") or []):
        reason = dig(cs, "state", "waiting", "reason") or dig(cs, "state", "terminated", "reason")
        if reason:
            return str(reason)
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_icon(pod: Obj, text: str) -> str:
    if text == "Running":
        ready = all(c.get("ready") for c in dig(pod, "status", "containerStatuses") or [{}])
        return "✔" if ready else "◌"
    if text in ("Succeeded", "Completed"):
        return "✔"
    if text in ("Pending", "ContainerCreating", "PodInitializing", "Terminating"):
        return "◌"
    return "✖"


def _pod_ready(pod: Obj) -> str:
    statuses = dig(pod, "status", "containerStatuses") or []
    total = len(dig(pod, "spec", "containers") or statuses)
    ready = sum(1 for c in statuses if isinstance(c, Mapping) and c.get("ready"))
    restarts = sum(_int(c.get("restartCount")) for c in statuses if isinstance(c, Mapping))
    return f"ready:{ready}/{total}" + (f", restarts:{restarts}" if restarts else "")


def deployment_state(deployment: Obj) -> str:
    desired = _int(dig(deployment, "spec", "replicas"), 1)
    status = deployment.get("status") or {}
    current, ready = _int(status.get("replicas")), _int(status.get("readyReplicas"))
    if desired == 0 and current == 0:
        return "• ScaledDown"
    if current == desired and ready >= desired:
        return "✔ Healthy"
    return "◌ Progressing"


def revision_of(obj: Obj) -> str:
    return str(dig(obj, "metadata", "labels", LABEL_REVISION) or "")


def _revisions(status: Obj, deployments: Sequence[Obj]) -> list[tuple[str, str, Obj | None]]:
    """(revision, role, Deployment) of every revision: canary, stable, then the newest first."""
    by_revision = {revision_of(d): d for d in deployments if revision_of(d)}
    canary, stable = status.get("canaryRevision"), status.get("stableRevision")
    ordered: list[tuple[str, str, Obj | None]] = []
    for revision, role in ((canary, "canary"), (stable, "stable")):
        if revision:
            ordered.append((str(revision), role, by_revision.pop(str(revision), None)))
    rest = sorted(by_revision.items(),
                  key=lambda kv: (str(dig(kv[1], "metadata", "creationTimestamp") or ""), kv[0]),
                  reverse=True)
    ordered += [(revision, "", d) for revision, d in rest]
    return ordered


def _tree(ps: Obj, deployments: Sequence[Obj], pods: Sequence[Obj], now: datetime) -> list[str]:
    meta = ps.get("metadata") or {}
    status = ps.get("status") or {}
    rows: list[tuple[str, str, str, str, str]] = [
        ("NAME", "KIND", "STATUS", "AGE", "INFO"),
        (f"⟳ {meta.get('name', '?')}", "PaymentService", phase_text(status.get("phase"))
         .replace(" (no status yet)", ""), age(meta.get("creationTimestamp"), now), ""),
    ]
    revisions = _revisions(status, deployments)
    for i, (revision, role, deployment) in enumerate(revisions):
        last = i == len(revisions) - 1
        branch, cont = ("└──", "   ") if last else ("├──", "│  ")
        rows.append((f"{branch}# revision:{revision}", "", "", "", role))
        if deployment is None:
            rows.append((f"{cont}└──(no Deployment yet)", "", "", "", ""))
            continue
        desired = _int(dig(deployment, "spec", "replicas"), 1)
        ready = _int(dig(deployment, "status", "readyReplicas"))
        info = ", ".join(x for x in (role, f"ready:{ready}/{desired}") if x)
        rows.append((f"{cont}└──⧉ {dig(deployment, 'metadata', 'name')}", "Deployment",
                     deployment_state(deployment),
                     age(dig(deployment, "metadata", "creationTimestamp"), now), info))
        own = sorted((p for p in pods if revision_of(p) == revision),
                     key=lambda p: str(dig(p, "metadata", "name")))
        for j, pod in enumerate(own):
            twig = "└──" if j == len(own) - 1 else "├──"
            text = pod_status(pod)
            rows.append((f"{cont}   {twig}□ {dig(pod, 'metadata', 'name')}", "Pod",
                         f"{_pod_icon(pod, text)} {text}",
                         age(dig(pod, "metadata", "creationTimestamp"), now), _pod_ready(pod)))
    return _table(rows)


# ---- all of it ------------------------------------------------------------------------------


def render(
    ps: Obj,
    deployments: Sequence[Obj] = (),
    pods: Sequence[Obj] = (),
    job: Obj | None = None,
    *,
    now: datetime,
) -> str:
    """The whole ``get`` screen, ending with a newline.

    ``deployments`` are the service's revision Deployments, ``pods`` its pods (labelled
    with their revision) and ``job`` the migration Job named in ``status.migration``.
    """
    status = ps.get("status") or {}
    sections = [
        _header(ps),
        _gates(status),
        _analysis(status, now),
        _migration(ps, job, now),
        _tree(ps, deployments, pods, now),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
