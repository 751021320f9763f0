"""Each image's lock really installs, alone, and is enough for every module of its side.

What the Dockerfile's ``venv-<image>`` stage does, without Docker: a fresh virtualenv made
``--without-pip``, the lock installed into it with ``pip --python … --require-hashes
--no-deps`` (pip's configured index; cached wheels make it quick, about 20 s an image), then
every module of the image's package imported from the source tree, its console entry point
run with ``--help``, and the other side's libraries proved absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.unit.packaging import images as im

pytestmark = pytest.mark.integration

SIDES = {
    "operator": ("payment_operator", "payment_operator.main", ("stripe", "psycopg")),
    "runtime": ("payment_runtime", "payment_runtime.cli", ("kopf", "kubernetes")),
}

IMPORT_ALL = """
import importlib, importlib.util, pkgutil, sys
package, entry, absent = sys.argv[1], sys.argv[2], sys.argv[3:]
pkg = importlib.import_module(package)
for mod in pkgutil.walk_packages(pkg.__path__, package + "."):
    importlib.import_module(mod.name)
for name in absent:
    assert importlib.util.find_spec(name) is None, f"{name} is installed"
for name in ("pip", "setuptools", "wheel"):
    assert importlib.util.find_spec(name) is None, f"{name} is installed"
sys.argv = [package.replace("_", "-"), "--help"]
importlib.import_module(entry).main()
"""


@pytest.mark.parametrize("image", im.IMAGES)
def test_lock_installs_alone_and_imports_every_module(image: str, tmp_path: Path) -> None:
    package, entry, absent = SIDES[image]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--require-hashes", "--no-deps", "-r", str(im.LOCKS / f"{image}.txt")],
        check=True, timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(im.ROOT / "operator") if image == "operator" else str(im.ROOT)
    done = subprocess.run(
        [str(python), "-c", IMPORT_ALL, package, entry, *absent],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    # argparse's --help exits 0 after printing the usage line
    assert done.returncode == 0, done.stderr
    assert f"usage: {package.replace('_', '-')}" in done.stdout
