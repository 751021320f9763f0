"""The benchmark report: ``bench/results/latest.md`` and its PNG charts.

Every bench writes its own Markdown (``runtime.md``, ``operator_scale.md``,
``rollouts_compare.md``) with the baseline it measured in the same run.  This module reads
their figures back (:func:`figures`, pure), holds them against the performance goals
(:func:`goals`, pure), draws one chart per bench with matplotlib (:func:`charts`, which
imports it lazily: the ``bench`` extra installs it) and writes ``latest.md``: the machine and
the date, the goals table (met, or the gap), the charts, then each bench's own section.
``python -m bench`` runs it last; ``python -m bench.report`` redraws from the files alone.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CHARTS = RESULTS / "charts"
#: The benches' own reports, in the order ``latest.md`` shows them.
SECTIONS = ("runtime.md", "operator_scale.md", "operator_profile.md", "rollouts_compare.md",
            "durations.md")

_NUMBER = r"([0-9][0-9.,]*)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def tables(markdown: str) -> Iterator[list[dict[str, str]]]:
    """Every pipe table of ``markdown``, as rows keyed by the header's cells."""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines) - 1:
        head, rule = lines[i].strip(), lines[i + 1].strip()
        if head.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rule):
            keys = [c.strip() for c in head.strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(keys, cells, strict=False)))
                i += 1
            yield rows
        else:
            i += 1


@dataclass
class Runtime:
    """``bench.runtime``: the server at its maximum and at ~70 %, and the two floors."""

    max_per_s: float
    p99_ms: float
    cpu_ms: float
    paced_p99_ms: float | None
    pgbench_tps: float
    stripe_mock_per_s: float | None
    #: Velocity checks and rate limits on / off, alternated in one run (``BENCH_RISK=0``: none).
    risk_throughput_ratio: float | None = None
    risk_cpu_ratio: float | None = None


@dataclass
class Scale:
    """One row of ``bench.operator_scale``."""

    count: int
    floor_s: float
    paydeck_s: float
    cpu_per_object: float
    rss_mib: float
    requests_per_pass: float
    idle_writes: int | None  # None: not measured at this N

    @property
    def ratio(self) -> float:
        return self.paydeck_s / self.floor_s


@dataclass
class Figures:
    """What the benches measured (``None`` or empty: that bench has not written a report)."""

    runtime: Runtime | None = None
    scale: list[Scale] = field(default_factory=list)
    #: ``bench.rollouts_compare``: (N, figure) -> (Argo Rollouts, Paydeck).
    argo: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    #: Minutes of the last whole ``python -m bench`` run (``durations.md``).
    bench_minutes: float | None = None


def runtime_figures(markdown: str) -> Runtime | None:
    """The first (default-configuration) run of ``runtime.md``."""
    peak = re.search(
        rf"payment-runtime POST /api/v1/payments[^:]*, max:\s*{_NUMBER}/s.*?p99 {_NUMBER} ms"
        rf".*?server CPU {_NUMBER} ms/payment",
        markdown,
    )
    pg = re.search(rf"pgbench[^:]*:\s*{_NUMBER} tx/s", markdown)
    if peak is None or pg is None:
        return None
    paced = re.search(rf"payment-runtime at ~70% of max[^:]*:\s*{_NUMBER}/s.*?p99 {_NUMBER} ms",
                      markdown)
    mock = re.search(rf"stripe-mock POST /v1/payment_intents:\s*{_NUMBER}/s", markdown)
    risk = re.search(
        rf"ratio risk on/off[^:]*: throughput {_NUMBER}.*?CPU/payment {_NUMBER}", markdown
    )
    return Runtime(
        max_per_s=_num(peak.group(1)),
        p99_ms=_num(peak.group(2)),
        cpu_ms=_num(peak.group(3)),
        paced_p99_ms=_num(paced.group(2)) if paced else None,
        pgbench_tps=_num(pg.group(1)),
        stripe_mock_per_s=_num(mock.group(1)) if mock else None,
        risk_throughput_ratio=_num(risk.group(1)) if risk else None,
        risk_cpu_ratio=_num(risk.group(2)) if risk else None,
    )


def _count(cell: str) -> int | None:
    """A count, or None for a cell that is not one ("not measured")."""
    return int(cell) if cell.strip().isdigit() else None


def scale_figures(markdown: str) -> list[Scale]:
    """The rows of ``operator_scale.md``, one per N."""
    rows = []
    for table in tables(markdown):
        for row in table:
            if "N" not in row or "paydeck s" not in row:
                continue
            rows.append(Scale(
                count=int(row["N"]),
                floor_s=_num(row["floor (SSA, no operator) s"]),
                paydeck_s=_num(row["paydeck s"]),
                cpu_per_object=_num(row["CPU-s/object"]),
                rss_mib=_num(row["peak RSS MiB"]),
                requests_per_pass=_num(row["API requests/pass"]),
                idle_writes=_count(row["writes in an idle resync"]),
            ))
    return rows


def argo_figures(markdown: str) -> dict[tuple[int, str], tuple[float, float]]:
    """(N, figure) -> (Argo Rollouts, Paydeck) from ``rollouts_compare.md`` (nan kept out)."""
    found: dict[tuple[int, str], tuple[float, float]] = {}
    for table in tables(markdown):
        for row in table:
            try:
                found[int(row["N"]), row["figure"]] = (
                    _num(row["Argo Rollouts"]), _num(row["Paydeck"]))
            except (KeyError, ValueError):
                continue
    return found


def figures(results: Path = RESULTS) -> Figures:
    """Everything the bench reports under ``results`` say."""

    def read(name: str) -> str:
        path = results / name
        return path.read_text() if path.exists() else ""

    return Figures(
        runtime=runtime_figures(read("runtime.md")),
        scale=scale_figures(read("operator_scale.md")),
        argo=argo_figures(read("rollouts_compare.md")),
        bench_minutes=bench_minutes(read("durations.md")),
    )


def bench_minutes(markdown: str) -> float | None:
    """The ``all`` row of ``durations.md``."""
    for table in tables(markdown):
        for row in table:
            if row.get("bench") == "all":
                return _num(row["minutes"])
    return None


@dataclass(frozen=True)
class Goal:
    """One goal of the performance issue, and what the last run measured for it."""

    name: str
    target: str
    measured: str
    met: bool | None  # None: not measured in these reports
    #: Where the report shows what the gap is made of (a profile's section), when not met.
    where: str = ""


#: The sections that say where the time of an unmet goal goes.
RUNTIME_PROFILE = "the server's profile (payment runtime section)"
OPERATOR_PROFILE = ("the operator's profile; where the time goes (operator at scale: "
                    "control-plane CPU)")
ARGO_WHY = "the Argo Rollouts section (events of one rollout)"
ARGO_SCALE_WHY = ("the Argo Rollouts section (where the control plane's work went: CPU-s and "
                  "API requests per rollout)")
BENCH_TIME = "how long `make bench` took (minutes per bench)"


def _placed(items: list[Goal]) -> list[Goal]:
    """Each goal's profile section: runtime, operator or the Argo comparison."""
    out = []
    for g in items:
        if g.name.startswith(("runtime", "risk")):
            where = RUNTIME_PROFILE
        elif g.name.startswith("canary"):
            where = ARGO_WHY if "(N = 1)" in g.name else ARGO_SCALE_WHY
        else:
            where = OPERATOR_PROFILE
        out.append(Goal(g.name, g.target, g.measured, g.met, where))
    return out


def goals(f: Figures) -> list[Goal]:
    """Every goal, met or with its measured gap (pure)."""
    out: list[Goal] = []
    rt = f.runtime
    if rt is None:
        out += [Goal("runtime throughput", "≥ 0.5 x pgbench", "not measured", None),
                Goal("runtime CPU per payment", "≤ 2 ms", "not measured", None),
                Goal("runtime p99 at 70 % of max", "≤ 50 ms", "not measured", None)]
    else:
        ratio = rt.max_per_s / rt.pgbench_tps
        out.append(Goal("runtime throughput", "≥ 0.5 x pgbench",
                        f"{ratio:.3f} x ({rt.max_per_s:.0f}/s vs {rt.pgbench_tps:.0f} tx/s)",
                        ratio >= 0.5))
        out.append(Goal("runtime CPU per payment", "≤ 2 ms", f"{rt.cpu_ms:.2f} ms",
                        rt.cpu_ms <= 2.0))
        if rt.paced_p99_ms is None:
            out.append(Goal("runtime p99 at 70 % of max", "≤ 50 ms", "not measured", None))
        else:
            out.append(Goal("runtime p99 at 70 % of max", "≤ 50 ms", f"{rt.paced_p99_ms:.0f} ms",
                            rt.paced_p99_ms <= 50.0))
        if rt.risk_throughput_ratio is not None and rt.risk_cpu_ratio is not None:
            out.append(Goal(
                "risk checks on (velocity, rate limit)", "≤ 10 % regression",
                f"throughput x{rt.risk_throughput_ratio:.2f}, CPU/payment "
                f"x{rt.risk_cpu_ratio:.2f}",
                rt.risk_throughput_ratio >= 0.9 and rt.risk_cpu_ratio <= 1.1))
    big = max(f.scale, key=lambda s: s.count, default=None)
    if big is None:
        out.append(Goal("operator: all Ready", "≤ 1.2 x floor at N = 1,000", "not measured", None))
    else:
        at = f" at N = {big.count:,}"
        full = big.count >= 1000
        idle = [s for s in f.scale if s.idle_writes is not None]
        out += [
            Goal("operator: all Ready", "≤ 1.2 x floor at N = 1,000", f"{big.ratio:.2f} x{at}",
                 big.ratio <= 1.2 if full else (False if big.ratio > 1.2 else None)),
            Goal("operator CPU per object", "≤ 0.05 CPU-s", f"{big.cpu_per_object:.3f}{at}",
                 big.cpu_per_object <= 0.05 if full else (
                     False if big.cpu_per_object > 0.05 else None)),
            Goal("operator peak RSS", "≤ 150 MB at N = 1,000", f"{big.rss_mib:.0f} MiB{at}",
                 big.rss_mib * 1.048576 <= 150 if full else (
                     False if big.rss_mib * 1.048576 > 150 else None)),
            Goal("writes per idle resync", "0",
                 ", ".join(f"{s.idle_writes} (N = {s.count})" for s in idle) or "not measured",
                 all(s.idle_writes == 0 for s in idle) if idle else None),
        ]
    counts = sorted({n for n, _ in f.argo})
    if not counts:
        out += [Goal("canary step latency p95", "≤ 0.5 s", "not measured", None),
                Goal("canary 10 → 50 → 100", "no slower than Argo Rollouts", "not measured",
                     None)]
    for n in counts:
        step = f.argo.get((n, "step latency p95 s"))
        promote = f.argo.get((n, "promote p50 s"))
        done = f.argo.get((n, "promoted in time"))
        if step is not None:
            out.append(Goal(f"canary step latency p95 (N = {n})", "≤ 0.5 s",
                            f"{step[1]:.3f} s (Argo {step[0]:.3f} s)", step[1] <= 0.5))
        if promote is not None:
            all_done = done is None or done[1] >= n
            out.append(Goal(
                f"canary 10 → 50 → 100 (N = {n})", "no slower than Argo Rollouts",
                f"p50 {promote[1]:.2f} s vs {promote[0]:.2f} s"
                + ("" if all_done else f"; {done[1]:.0f} of {n} promoted in time" if done else ""),
                promote[1] <= promote[0] and all_done))
    out = _placed(out)
    out.append(Goal("make bench, every bench", "≤ 20 min",
                    "not measured" if f.bench_minutes is None else f"{f.bench_minutes:.1f} min",
                    None if f.bench_minutes is None else f.bench_minutes <= 20,
                    BENCH_TIME))
    return out


def goals_table(items: list[Goal]) -> str:
    """The goals as a Markdown table."""
    mark = {True: "met", False: "**not met**", None: "open"}
    lines = ["| goal | target | measured | | where the gap goes |", "|---|---|---|---|---|"]
    lines += [
        f"| {g.name} | {g.target} | {g.measured} | {mark[g.met]} "
        f"| {g.where if g.met is not True else ''} |"
        for g in items
    ]
    return "\n".join(lines)


def machine() -> str:
    """The machine the figures come from: CPU model, cores, memory, kernel."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                       .splitlines() if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kib = 0
    return (f"{os.cpu_count()} x {model}, {mem_kib / 2**20:.0f} GiB, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def charts(f: Figures, out: Path = CHARTS) -> list[Path]:
    """One PNG per bench that has figures; returns the files written."""
    import matplotlib  # the bench extra only, and only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: object, name: str) -> None:
        path = out / name
        fig.savefig(path, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]
        written.append(path)

    if f.runtime is not None:
        rt = f.runtime
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
        names = ["payment-runtime", "pgbench (same SQL)"]
        values = [rt.max_per_s, rt.pgbench_tps]
        if rt.stripe_mock_per_s is not None:
            names.append("stripe-mock (same call)")
            values.append(rt.stripe_mock_per_s)
        left.barh(names, values, color=["#3b6ea5", "#999999", "#bbbbbb"][: len(values)])
        left.axvline(rt.pgbench_tps * 0.5, color="#c44e52", linestyle="--",
                     label="goal: 0.5 x pgbench")
        left.set_xlabel("per second (higher is better)")
        left.legend(loc="lower right", fontsize=8)
        right.bar(["server CPU ms / payment"], [rt.cpu_ms], color="#3b6ea5")
        right.axhline(2.0, color="#c44e52", linestyle="--", label="goal: 2 ms")
        right.legend(fontsize=8)
        fig.suptitle("Payment runtime: POST /api/v1/payments beside its floors")
        save(fig, "runtime.png")

    if f.scale:
        rows = sorted(f.scale, key=lambda s: s.count)
        labels = [f"N={s.count}" for s in rows]
        xs = range(len(rows))
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
        left.bar([x - 0.2 for x in xs], [s.floor_s for s in rows], 0.4, label="SSA floor",
                 color="#999999")
        left.bar([x + 0.2 for x in xs], [s.paydeck_s for s in rows], 0.4, label="Paydeck",
                 color="#3b6ea5")
        left.set_xticks(list(xs), labels)
        left.set_ylabel("s until all Ready")
        left.legend(fontsize=8)
        right.bar(labels, [s.cpu_per_object for s in rows], color="#3b6ea5")
        right.axhline(0.05, color="#c44e52", linestyle="--", label="goal: 0.05")
        right.set_ylabel("operator CPU-s / object")
        right.legend(fontsize=8)
        fig.suptitle("Operator at scale: minimal PaymentServices applied at once")
        save(fig, "operator_scale.png")

    if f.argo:
        wanted = ["promote p50 s", "step latency p95 s", "controller CPU-s (rollouts)",
                  "controller peak RSS MiB"]
        counts = sorted({n for n, _ in f.argo})
        fig, ax = plt.subplots(figsize=(10, 3.2))
        width = 0.8 / len(counts)
        for i, n in enumerate(counts):
            ratios = []
            for name in wanted:
                argo, paydeck = f.argo.get((n, name), (0.0, 0.0))
                ratios.append(paydeck / argo if argo else 0.0)
            ax.bar([x + i * width for x in range(len(wanted))], ratios, width, label=f"N={n}")
        ax.axhline(1.0, color="#c44e52", linestyle="--", label="Argo Rollouts = 1")
        ax.set_xticks([x + width * (len(counts) - 1) / 2 for x in range(len(wanted))], wanted)
        ax.set_ylabel("Paydeck / Argo Rollouts (lower is better)")
        ax.legend(fontsize=8)
        fig.suptitle("The same 10 → 50 → 100 canary, Paydeck beside Argo Rollouts")
        save(fig, "rollouts_compare.png")
    return written


def render(f: Figures, sections: list[str], chart_files: list[Path], when: str,
           where: str) -> str:
    """``latest.md`` (pure): header, goals, charts, then the benches' own sections."""
    parts = [
        "# Benchmarks: the latest figures",
        "",
        f"Written {when} by `python -m bench` (`make bench`) on {where}. Every figure stands "
        "beside a baseline measured in the same run; each section below carries the date of "
        "its own run.",
        "",
        "## Goals",
        "",
        goals_table(goals(f)),
        "",
    ]
    if chart_files:
        parts += ["## Charts", ""]
        parts += [f"![{p.stem}](charts/{p.name})" for p in chart_files]
        parts.append("")
    for text in sections:
        # Each bench's report has its own headings: nest them one level under this page's.
        parts += [re.sub(r"^(#{1,5}) ", r"#\1 ", text.strip(), flags=re.MULTILINE), ""]
    return "\n".join(parts)


def main(results: Path = RESULTS) -> Path:
    """Write ``latest.md`` and the charts from the reports under ``results``."""
    f = figures(results)
    try:
        chart_files = charts(f, results / "charts")
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no charts", flush=True)
        chart_files = []
    sections = [(results / n).read_text() for n in SECTIONS if (results / n).exists()]
    text = render(f, sections, chart_files, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  machine())
    path = results / "latest.md"
    path.write_text(text)
    print(goals_table(goals(f)), flush=True)
    print(f"wrote {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
