"""Run every benchmark, then the report: ``python -m bench [operator|scale|runtime|tracing|argo]``.

Each bench writes its own ``bench/results/<name>.md``; :mod:`bench.report` then gathers them
into ``bench/results/latest.md`` with the goals and PNG charts.
"""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "operator": "bench.operator_resync",
    "scale": "bench.operator_scale",
    "runtime": "bench.runtime.run",
    "tracing": "bench.runtime.tracing_cost",
    "argo": "bench.rollouts_compare",
}


def main() -> int:
    wanted = sys.argv[1:] or list(BENCHES)
    for name in wanted:
        module = importlib.import_module(BENCHES[name])
        print(f"== {name} ==", flush=True)
        module.main()
    from bench import report  # after the benches, which may take minutes

    report.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
