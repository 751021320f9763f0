"""Golden YAML: every child of every case, one file per kind, compared to the builders' output.

Regenerate after an intended change with::

    PAYDECK_UPDATE_GOLDEN=1 .venv/bin/pytest -p no:cacheprovider tests/unit/builders

and review the diff of ``tests/unit/builders/golden/`` before committing it.
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from payment_operator.builders import build_all

from tests.unit.builders.cases import CASE_IDS, CASES, Case

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PAYDECK_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.unit


# libyaml when available: the pure-Python YAML is most of these tests' time.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings (such as CSI ``objects``) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _load(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_Loader))


def _by_kind(children: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        out.setdefault(child["kind"].lower(), []).append(child)
    return out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_children_match_golden_files(case: Case) -> None:
    expected_dir = GOLDEN / case.name
    rendered = {
        f"{kind}.yaml": _dump(docs) for kind, docs in _by_kind(build_all(case.ps, case.ctx)).items()
    }
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for filename, text in rendered.items():
            (expected_dir / filename).write_text(text)
    on_disk = sorted(p.name for p in expected_dir.glob("*.yaml"))
    assert sorted(rendered) == on_disk, "children differ from golden files (kinds added or gone)"
    for filename, text in rendered.items():
        golden = (expected_dir / filename).read_text()
        if _load(golden) != _load(text):
            diff = "".join(
                difflib.unified_diff(
                    golden.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"golden/{case.name}/{filename}",
                    "built",
                )
            )
            pytest.fail(f"{case.name}/{filename} differs from golden file:\n{diff}")


def test_every_golden_directory_belongs_to_a_case() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted(CASE_IDS)
