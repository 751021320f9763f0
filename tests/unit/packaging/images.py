"""Readers for the image build inputs: the Dockerfile's stages and the hash-locked requirements.

The Dockerfile is parsed by ``dockerfile-parse``; lock files (``uv pip compile
--generate-hashes`` output) are read into pins, hashes and the names uv annotated as coming
straight from ``pyproject.toml``. Nothing here touches the network.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ROOT / "requirements"
IMAGES = ("operator", "runtime")


@dataclass
class Stage:
    name: str
    base: str  # the FROM argument as written
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> list[str]:
        return [" ".join(v.split()) for k, v in self.instructions if k == "RUN"]

    def copies_from(self) -> list[str]:
        return [m.group(1) for k, v in self.instructions if k == "COPY"
                for m in [re.match(r"--from=(\S+)", v)] if m]


def global_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """``ARG name=default`` lines before the first FROM."""
    out: dict[str, str] = {}
    for ins in DockerfileParser(str(path)).structure:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG":
            name, _, default = ins["value"].partition("=")
            out[name] = default
    return out


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Every build stage by name (``AS``), in file order."""
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in DockerfileParser(str(path)).structure:
        if ins["instruction"] == "FROM":
            base, _, name = ins["value"].partition(" AS ")
            current = Stage(name=name.strip() or str(len(out)), base=base.strip())
            out[current.name] = current
        elif current is not None:
            current.instructions.append((ins["instruction"], ins["value"]))
    return out


def lineage(target: str, all_stages: dict[str, Stage]) -> list[Stage]:
    """The target stage and the stages it is built FROM, up to the external base image."""
    chain = [all_stages[target]]
    while chain[-1].base in all_stages:
        chain.append(all_stages[chain[-1].base])
    return chain


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    hashes: tuple[str, ...]
    direct: bool  # annotated "via paydeck (pyproject.toml)"


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` file."""
    pins: dict[NormalizedName, Pin] = {}
    for block in re.split(r"\n(?=\S)", path.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        head = block.split("\\", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", head)
        if not m:
            raise ValueError(f"{path.name}: not an exact pin: {head!r}")
        pins[canonicalize_name(m.group(1))] = Pin(
            name=canonicalize_name(m.group(1)),
            version=m.group(2),
            hashes=tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block)),
            direct="paydeck (pyproject.toml)" in block,
        )
    return pins


def pyproject() -> dict:  # type: ignore[type-arg]
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def direct_requirements(image: str) -> list[Requirement]:
    """What pyproject.toml asks for in an image: the base dependencies and the image's extra."""
    project = pyproject()["project"]
    return [Requirement(r) for r in
            [*project["dependencies"], *project["optional-dependencies"][image]]]


def build_requirements() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["build-system"]["requires"]]
