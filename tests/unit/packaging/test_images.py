"""The Dockerfile and its lock files, checked statically (no Docker engine on the CI machine).

Base images pinned by digest through a build argument; every image installs its own
hash-locked requirements with ``--require-hashes --no-deps``; the locks are fresh against
pyproject.toml (every direct dependency pinned, in range; nothing else claimed as direct);
the two images carry only their own side's libraries; and no pip, setuptools or wheel is left
in a final stage. Installing the locks for real is tests/integration/packaging/test_image_locks.py.
"""

from __future__ import annotations

import re

import pytest
from packaging.utils import canonicalize_name

from tests.unit.packaging import images as im

pytestmark = pytest.mark.unit

DIGEST_REF = re.compile(r"[a-z0-9./-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}")
#: Libraries an image must not carry (the other side's), by distribution name.
FORBIDDEN = {
    "runtime": {"kopf", "kubernetes"},
    "operator": {"stripe", "psycopg", "psycopg-binary", "psycopg-pool"},
}
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}
FINAL = ("runtime", "operator")


def test_every_from_is_a_stage_or_a_digest_pinned_build_argument() -> None:
    args = im.global_args()
    stages = im.stages()
    assert stages, "no FROM in the Dockerfile"
    for stage in stages.values():
        if stage.base in stages:
            continue
        m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", stage.base)
        assert m, f"stage {stage.name} is FROM {stage.base!r}, not a build argument"
        default = args.get(m.group(1), "")
        assert DIGEST_REF.fullmatch(default), (
            f"ARG {m.group(1)}={default!r} is not pinned by digest (name:tag@sha256:...)")


def test_final_targets_exist_with_their_entrypoints() -> None:
    stages = im.stages()
    for target in FINAL:
        entry = [v for k, v in stages[target].instructions if k == "ENTRYPOINT"]
        assert entry == [f'["payment-{target}"]']
        assert ("USER", "10001:10001") in stages[target].instructions


@pytest.mark.parametrize("target", FINAL)
def test_final_stage_holds_no_pip(target: str) -> None:
    stages = im.stages()
    chain = im.lineage(target, stages)
    runs = [r for s in chain for r in s.runs()]
    assert not [r for r in runs if re.search(r"\bpip\b.*\binstall\b", r)], runs
    # the base interpreter's own packaging tools go, and with them ensurepip's wheels
    removed = {word for r in runs for m in re.finditer(r"pip uninstall ([^&]*)", r)
               for word in m.group(1).split() if not word.startswith("-")}
    assert removed >= PACKAGING_TOOLS, runs
    assert any("ensurepip" in r and "rm -rf" in r for r in runs), runs
    # what is copied in comes from a virtualenv made without pip
    sources = {src for s in chain for src in s.copies_from()}
    assert sources == {f"venv-{target}"}
    venv_runs = stages[f"venv-{target}"].runs()
    assert any("-m venv --without-pip /opt/paydeck" in r for r in venv_runs), venv_runs
    assert not [k for s in chain for k, v in s.instructions
                if k == "COPY" and "/usr/local" in v]


@pytest.mark.parametrize("target", FINAL)
def test_each_image_installs_its_own_lock_with_hashes_and_no_deps(target: str) -> None:
    stage = im.stages()[f"venv-{target}"]
    assert ("COPY", f"requirements/{target}.txt /tmp/requirements.txt") in stage.instructions
    installs = [r for r in stage.runs() if "pip" in r]
    assert installs
    for run in installs:
        for cmd in re.findall(r"pip [^&]*install[^&]*", run):
            assert "--no-deps" in cmd, cmd
            if "-r /tmp/requirements.txt" in cmd:
                assert "--require-hashes" in cmd, cmd
    assert any("--require-hashes" in r and "-r /tmp/requirements.txt" in r for r in installs)


def test_wheel_is_built_with_the_locked_backend_without_isolation() -> None:
    runs = im.stages()["wheel"].runs()
    assert any("--require-hashes --no-deps -r requirements/build.txt" in r for r in runs), runs
    assert any("--no-build-isolation" in r for r in runs), runs


@pytest.mark.parametrize("lock", [*im.IMAGES, "build"])
def test_lock_pins_every_distribution_with_hashes(lock: str) -> None:
    pins = im.read_lock(im.LOCKS / f"{lock}.txt")
    assert pins
    assert not [p.name for p in pins.values() if not p.hashes]
    assert not PACKAGING_TOOLS & set(pins)


@pytest.mark.parametrize("image", im.IMAGES)
def test_image_lock_is_fresh_against_pyproject(image: str) -> None:
    pins = im.read_lock(im.LOCKS / f"{image}.txt")
    wanted = im.direct_requirements(image)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements/{image}.txt: run `make lock`"
        assert req.specifier.contains(pins[name].version, prereleases=True), (
            f"{name}=={pins[name].version} is outside {req}: run `make lock`")
    claimed = {p.name for p in pins.values() if p.direct}
    assert claimed == {canonicalize_name(r.name) for r in wanted}, (
        f"requirements/{image}.txt was compiled from another pyproject.toml: run `make lock`")


def test_build_lock_is_fresh_against_build_system() -> None:
    pins = im.read_lock(im.LOCKS / "build.txt")
    for req in im.build_requirements():
        name = canonicalize_name(req.name)
        assert name in pins and req.specifier.contains(pins[name].version), req


@pytest.mark.parametrize("image", im.IMAGES)
def test_image_carries_only_its_own_side(image: str) -> None:
    pins = im.read_lock(im.LOCKS / f"{image}.txt")
    carried = FORBIDDEN[image] & set(pins)
    assert not carried, f"the {image} image would carry {carried}"


def test_both_images_carry_confluent_kafka() -> None:
    # Deliberate: the operator's admin topic provisioner uses confluent_kafka's AdminClient.
    for image in im.IMAGES:
        assert "confluent-kafka" in im.read_lock(im.LOCKS / f"{image}.txt")
