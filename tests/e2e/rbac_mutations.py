"""Mutation check of the chart's RBAC: removing any one rule must make test_rbac.py fail.

    python -m tests.e2e.rbac_mutations              # every rule, in the modes that grant it
    python -m tests.e2e.rbac_mutations --verbs      # every verb of every rule instead
    python -m tests.e2e.rbac_mutations --only apps  # rules whose text contains "apps"
    python -m tests.e2e.rbac_mutations --mode namespaced  # one install mode only

The repository (tracked and untracked files, as they are now) is copied to a scratch
directory; the working tree is never changed.  One local control plane serves every run.  For
each rule of templates/rbac.yaml the copy gets the template without that rule, and
``tests/e2e/test_rbac.py`` runs there for each install mode that grants the rule; the run
must fail.  The unchanged chart runs first and must pass.  Exits 1 if a mutant survives.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hack import cluster as local_cluster

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path("charts/payment-operator/templates/rbac.yaml")
TEST = "tests/e2e/test_rbac.py"
#: The define each rule sits in, and the install modes whose roles include it.
MODES = {
    "payment-operator.rules.namespaced": ("cluster-wide", "namespaced"),
    "payment-operator.rules.peering": ("cluster-wide", "namespaced"),
    "payment-operator.rules.scanning": ("cluster-wide",),
    "payment-operator.rules.platformPolicy": ("cluster-wide", "namespaced"),
}
DEFINE = re.compile(r'{{- define "([^"]+)" -}}')


@dataclass(frozen=True)
class Mutant:
    name: str
    text: str  # the template without the rule (or verb)
    modes: tuple[str, ...]


def rules(template: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """(first line, end line, modes) of every ``- apiGroups:`` rule in the rule defines."""
    lines = template.splitlines(keepends=True)
    found: list[tuple[int, int, tuple[str, ...]]] = []
    modes: tuple[str, ...] = ()
    start: int | None = None
    for i, line in enumerate([*lines, "{{- end }}\n"]):
        opens = DEFINE.match(line)
        ends_rule = not line.startswith("  ") or line.startswith("- ")
        if start is not None and ends_rule:
            found.append((start, i, modes))
            start = None
        if opens:
            modes = MODES.get(opens.group(1), ())
        elif line.startswith("{{- end"):
            modes = ()
        if modes and line.startswith("- apiGroups:"):
            start = i
    return found


def mutants(template: str, verbs: bool) -> list[Mutant]:
    lines = template.splitlines(keepends=True)
    out: list[Mutant] = []
    for start, end, modes in rules(template):
        rule = "".join(lines[start:end])
        label = " ".join(rule.split())
        if not verbs:
            out.append(Mutant(f"without {label}", "".join(lines[:start] + lines[end:]), modes))
            continue
        for i in range(start, end):
            match = re.match(r"(  verbs: \[)([^\]]*)(\].*)", lines[i], re.DOTALL)
            if not match:
                continue
            granted = [v.strip() for v in match.group(2).split(",")]
            for verb in granted:
                rest = [v for v in granted if v != verb]
                if rest:
                    line = f"{match.group(1)}{', '.join(rest)}{match.group(3)}"
                    changed = [*lines[:i], line, *lines[i + 1:]]
                else:
                    changed = lines[:start] + lines[end:]
                out.append(Mutant(f"without {verb} in {label}", "".join(changed), modes))
    return out


def scratch_copy(into: Path) -> Path:
    """The repository's files as they are now (tracked and untracked, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def run(copy: Path, kubeconfig: Path, mode: str) -> tuple[bool, float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-x", "-q", "-p", "no:cacheprovider",
         "-k", mode],
        cwd=copy, env={**os.environ, "PAYDECK_TEST_KUBECONFIG": str(kubeconfig)},
        capture_output=True, text=True, check=False,
    )
    failures = [line for line in result.stdout.splitlines()
                if line.startswith(("E  ", "FAILED", "ERROR"))]
    return result.returncode == 0, time.monotonic() - started, (failures or [""])[0][:160]


def _interrupt(signum: int, frame: object) -> None:
    """A SIGTERM (a timeout, say) still takes the control plane down."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.rbac_mutations",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbs", action="store_true", help="remove one verb at a time")
    parser.add_argument("--only", default="", help="only rules whose text contains this")
    parser.add_argument("--mode", choices=("cluster-wide", "namespaced"), default=None,
                        help="only this install mode")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    work = Path(tempfile.mkdtemp(prefix="paydeck-rbac-mutations-"))
    copy = scratch_copy(work / "repo")
    original = (copy / TEMPLATE).read_text()
    todo = [m for m in mutants(original, args.verbs) if args.only in m.name]
    control = local_cluster.Cluster(work / "cluster")
    survivors: list[str] = []
    try:
        control.up()
        modes = (args.mode,) if args.mode else ("cluster-wide", "namespaced")
        for mode in modes:
            passed, seconds, detail = run(copy, control.kubeconfig, mode)
            print(f"control {mode}: {'passes' if passed else 'FAILS'} ({seconds:.0f}s) {detail}",
                  flush=True)
            if not passed:
                return 2
        for mutant in todo:
            (copy / TEMPLATE).write_text(mutant.text)
            for mode in (m for m in mutant.modes if m in modes):
                passed, seconds, detail = run(copy, control.kubeconfig, mode)
                verdict = "SURVIVES" if passed else "killed"
                print(f"{verdict:8} {mode:12} {seconds:4.0f}s  {mutant.name}\n"
                      f"{'':23}{detail}", flush=True)
                if passed:
                    survivors.append(f"{mode}: {mutant.name}")
        (copy / TEMPLATE).write_text(original)
    finally:
        control.down()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(todo)} mutants, {len(survivors)} surviving", *survivors, sep="\n")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
