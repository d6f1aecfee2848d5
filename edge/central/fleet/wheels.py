"""The wheels a board installs offline: the package and its device dependencies, for the board's
CPU and Python, fetched by pip on the operator's machine.

`pip download --platform/--python-version` picks wheels for the target but evaluates environment
markers (`tomli; python_version < "3.11"`) for the Python pip runs on. What the target's Python
needs beyond that is found here from the wheels' own metadata and fetched in further rounds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import edge
from edge.central.fleet.folder import FleetDirError

SOURCE_TREE = Path(edge.__file__).resolve().parents[1]  # the checkout, when running from one
EXTRAS = "litert"  # the device's TFLite interpreter (install.sh installs edge[litert])
# The oldest glibc among the boards' systems (Ubuntu 22.04 / JetPack 6: 2.35; Raspberry Pi OS
# bookworm: 2.36): wheels for any manylinux up to it run on all of them.
GLIBC_MINOR = 35
# What building the wheel reads. It is built from a copy of these: in the checkout, setuptools'
# build/ folder keeps modules deleted since the last build and would ship them.
BUILD_INPUTS = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "edge",
    "models",
    "firmware-config",
)


@dataclass(frozen=True)
class Target:
    """The board's CPU (aarch64, x86_64) and system Python ("3.11")."""

    arch: str
    python_version: str

    def pip_options(self) -> list[str]:
        platforms = [f"manylinux_2_{m}_{self.arch}" for m in range(GLIBC_MINOR, 16, -1)]
        platforms.append(f"manylinux2014_{self.arch}")  # pip does not expand manylinux_2_N to older tags
        abi = "cp" + self.python_version.replace(".", "")
        return [
            "--only-binary=:all:",
            *(f"--platform={p}" for p in platforms),
            f"--python-version={self.python_version}",
            "--implementation=cp",
            f"--abi={abi}",
        ]

    def markers(self, extra: str = "") -> dict[str, str]:
        return {
            "python_version": self.python_version,
            "python_full_version": f"{self.python_version}.0",
            "platform_machine": self.arch,
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": extra,
        }


def collect_wheels(target: Target, dest: Path, wheel: Path | None = None, wheels_from: Path | None = None) -> str:
    """Fill `dest` with the package's wheel (`wheel`, else built from the checkout) and every wheel
    it needs on `target`, from PyPI or only from `wheels_from`; returns the package's version."""
    dest.mkdir(parents=True, exist_ok=True)
    source = ["--no-index", "--find-links", str(wheels_from)] if wheels_from else []
    with tempfile.TemporaryDirectory() as tmp:
        own = wheel or build_wheel(Path(tmp))
        name, version, _, _ = _parse(own)
        if name != "edge":
            raise FleetDirError(f"--wheel {own}: not a wheel of edge (edge-VERSION-py3-none-any.whl)")
        wanted, asked = [f"{own.resolve()}[{EXTRAS}]"], set()
        while wanted:
            _pip("download", *target.pip_options(), "--dest", str(dest), *source, *wanted)
            asked.update(wanted)
            wanted = missing_requirements(target, dest)
            if asked.intersection(wanted):
                raise FleetDirError(f"pip download did not fetch {', '.join(asked.intersection(wanted))}")
    return str(version)


def missing_requirements(target: Target, wheels: Path) -> list[str]:
    """Requirements of the wheels in `wheels` that `target` needs and no wheel there provides."""
    # `packaging` (edge[central]) is imported here, not at the top: every `edge` command, the
    # device's included, imports this module for `edge fleet provision`'s options.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = {_parse(w)[0]: w for w in wheels.glob("*.whl")}
    missing = []
    for name, wheel in found.items():
        extras = ("", EXTRAS) if name == "edge" else ("",)
        for line in _requires(wheel):
            requirement = Requirement(line)
            needed = requirement.marker is None or any(requirement.marker.evaluate(target.markers(e)) for e in extras)
            if needed and canonicalize_name(requirement.name) not in found:
                requirement.marker = None
                missing.append(str(requirement))
    return sorted(set(missing))


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return HeaderParser().parsestr(z.read(metadata).decode()).get_all("Requires-Dist") or []


def _parse(wheel: Path):
    from packaging.utils import parse_wheel_filename

    try:
        return parse_wheel_filename(wheel.name)
    except ValueError:
        raise FleetDirError(f"{wheel} is not a wheel file name") from None


def build_wheel(tmp: Path) -> Path:
    """The package's wheel, built from a copy of the checkout this code runs from."""
    if not (SOURCE_TREE / "pyproject.toml").is_file():
        raise FleetDirError("edge is not running from a checkout: give the package's wheel with --wheel PATH")
    tree = tmp / "src"
    for name in BUILD_INPUTS:
        source = SOURCE_TREE / name
        if source.is_dir():
            shutil.copytree(
                source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "eval", "eval-fp16")
            )
        elif source.is_file():
            tree.mkdir(exist_ok=True)
            shutil.copy(source, tree / name)
    _pip("wheel", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(tree))
    return next((tmp / "dist").glob("edge-*.whl"))


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line][-3:]
        raise FleetDirError(f"pip {args[0]} failed: {' '.join(last) or done.returncode}")
