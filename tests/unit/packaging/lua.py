"""Run the shipped Argo CD Lua scripts the way Argo CD does: ``obj`` as a global, Lua 5.1.

Argo CD embeds gopher-lua, a Lua 5.1 implementation, so the scripts run here on lupa's Lua 5.1
runtime.  Python dicts and lists go in as Lua tables; the returned table comes back as plain
Python data (a table with keys 1..n becomes a list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

ROOT = Path(__file__).resolve().parents[3]
ARGOCD = ROOT / "manifests" / "argocd"
HEALTH = ARGOCD / "health.lua"
ACTIONS = ARGOCD / "actions"
ACTION_NAMES = ("promote", "promote-full", "abort", "retry")


def _to_python(value: Any) -> Any:
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and sorted(items) == list(range(1, len(items) + 1)):
        return [_to_python(items[i]) for i in range(1, len(items) + 1)]
    return {str(k): _to_python(v) for k, v in items.items()}


def run(script: str | Path, obj: dict[str, Any]) -> Any:
    """Execute a script (its text or path) with ``obj`` bound, and return its result."""
    source = script.read_text() if isinstance(script, Path) else script
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    return _to_python(runtime.execute(source))
