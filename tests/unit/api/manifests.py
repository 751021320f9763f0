"""Loading the API's test data: samples and annotated invalid manifests.

An invalid manifest under ``tests/data/invalid`` opens with a comment saying what is wrong,
then ``# expect: <text>`` lines: every text must appear in the API server's error, and the
first names the offending field.  A file with two documents is an update: the first is
applied (and accepted), the second must be rejected (transition rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))


@dataclass(frozen=True)
class InvalidCase:
    """One invalid manifest: its documents and the texts its rejection must contain."""

    name: str
    why: str
    expect: tuple[str, ...]
    original: dict[str, Any] | None
    manifest: dict[str, Any]

    @property
    def is_update(self) -> bool:
        return self.original is not None


def load_sample(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def load_invalid(path: Path) -> InvalidCase:
    text = path.read_text()
    comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    expect = tuple(c.removeprefix("expect:").strip() for c in comments if c.startswith("expect:"))
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if not 1 <= len(docs) <= 2:
        raise ValueError(f"{path.name}: expected one or two documents, found {len(docs)}")
    return InvalidCase(
        name=path.stem,
        why=comments[0] if comments else "",
        expect=expect,
        original=docs[0] if len(docs) == 2 else None,
        manifest=docs[-1],
    )
