"""Run every benchmark: ``python -m bench [operator|scale|runtime|tracing|argo]``."""

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
