"""The package as a user gets it: a wheel built from the source, and a fresh venv it is installed in.

`edge_wheel` builds the wheel from a copy of the source (pip builds in place, and the checkout
is shared), `edge_wheels` is a folder with it and the wheels of its device dependencies (a
bundle's `wheels/`), `installed_edge` a venv outside the checkout with `edge[litert]` installed
from that folder alone. The dependencies' wheels are downloaded once from the index pip is set up
with into `.cache/wheelhouse/` (CI: PyPI) and used offline from then on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from edge.central.fleet.wheels import build_wheel

REPO = Path(__file__).resolve().parents[1]
DEVICE_INSTALL = "edge[litert]"  # what install.sh installs on a board
WHEELHOUSE = REPO / ".cache" / "wheelhouse" / f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def pip(python: Path | str, *args: str) -> None:
    """`python -m pip ARGS`; a failure shows pip's own output."""
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def edge_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel, built by pip from a copy of the checkout, as `edge fleet provision` builds it."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def edge_wheels(edge_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the package's wheel and its device dependencies' wheels for this machine."""
    folder = tmp_path_factory.mktemp("wheels")
    shutil.copy2(edge_wheel, folder)
    offline = ["--no-index", "--find-links", str(folder), "--find-links", str(WHEELHOUSE)]
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", *offline]
        + [DEVICE_INSTALL],
        capture_output=True,
    )
    if resolved.returncode != 0:  # not cached yet, or the package's dependencies changed
        pip(sys.executable, "download", "--quiet", "--dest", str(WHEELHOUSE), f"{edge_wheel}[litert]")
    for cached in WHEELHOUSE.glob("*.whl"):
        if not cached.name.startswith("edge-"):
            (folder / cached.name).symlink_to(cached)
    return folder


@pytest.fixture(scope="session")
def installed_edge(edge_wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv, outside the checkout, with only the device install in it."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(venv / "bin" / "python", "install", "--quiet", "--no-index", "--find-links", str(edge_wheels), DEVICE_INSTALL)
    return venv / "bin"
