"""Run every benchmark, then the report: ``python -m bench [operator|scale|runtime|tracing|argo]``.

Each bench writes its own ``bench/results/<name>.md``; :mod:`bench.report` then gathers them
into ``bench/results/latest.md`` with the goals and PNG charts.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

BENCHES = {
    "operator": "bench.operator_resync",
    "scale": "bench.operator_scale",
    "runtime": "bench.runtime.run",
    "tracing": "bench.runtime.tracing_cost",
    "argo": "bench.rollouts_compare",
}


def durations(seconds: dict[str, float]) -> str:
    """``durations.md``: how long each bench of a whole run took (pure)."""
    rows = "\n".join(f"| {name} | {s / 60:.1f} |" for name, s in seconds.items())
    total = sum(seconds.values())
    return (f"## How long `make bench` took ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
            "\n\nEvery bench in one run, its tools already built (the report itself takes "
            f"seconds).\n\n| bench | minutes |\n|---|---:|\n{rows}\n| all | {total / 60:.1f} |\n")


def main() -> int:
    wanted = sys.argv[1:] or list(BENCHES)
    seconds: dict[str, float] = {}
    for name in wanted:
        started = time.monotonic()
        module = importlib.import_module(BENCHES[name])
        print(f"== {name} ==", flush=True)
        module.main()
        seconds[name] = time.monotonic() - started
    if wanted == list(BENCHES):  # a whole run: its length is one of the goals
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "durations.md").write_text(durations(seconds))
    from bench import report  # after the benches, which may take minutes

    report.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
