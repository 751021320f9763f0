"""Render manifests/argocd/argocd-cm.yaml from health.lua and actions/*.lua.

The ConfigMap embeds the Lua files verbatim; the tests compare the checked-in file with this
rendering. After editing a .lua file, refresh it with::

    .venv/bin/python -m tests.unit.packaging.argocd_cm
"""

from __future__ import annotations

import sys

from tests.unit.packaging import lua

PATH = lua.ARGOCD / "argocd-cm.yaml"

HEADER = """\
# Argo CD settings for PaymentService: merge these keys into your argocd-cm ConfigMap.
# The health check is health.lua and the actions are actions/*.lua, embedded verbatim (a unit
# test fails when this file and the .lua files differ; refresh it with
# `.venv/bin/python -m tests.unit.packaging.argocd_cm`). Status drives everything: health reads
# status.phase and conditions; actions write status.command, never spec.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def render() -> str:
    actions = "discovery.lua: |\n" + _indent((lua.ACTIONS / "discovery.lua").read_text(), 2)
    actions += "definitions:\n"
    for name in lua.ACTION_NAMES:
        actions += f"- name: {name}\n  action.lua: |\n"
        actions += _indent((lua.ACTIONS / f"{name}.lua").read_text(), 4)
    return (
        HEADER
        + "  resource.customizations.health.paydeck.dev_PaymentService: |\n"
        + _indent(lua.HEALTH.read_text(), 4)
        + "  resource.customizations.actions.paydeck.dev_PaymentService: |\n"
        + _indent(actions, 4)
    )


def main() -> int:
    PATH.write_text(render())
    print(f"wrote {PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
