"""``python -m bench.runtime``: see :mod:`bench.runtime.run`."""

from bench.runtime.run import main

raise SystemExit(main())
