"""Load TFLite models listed in `models/manifest.json`, checking each file before use.

The device must never run a model it cannot vouch for: every load checks that the file
exists and that its sha256 matches the manifest, and every failure names the file and the
problem in words an operator can act on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.resources import shipped

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


class ModelError(RuntimeError):
    """A model cannot be used: missing, corrupt, mismatched, or no runtime to run it."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest; `spec` is its whole manifest record (input, output, ...)."""

    model_id: str
    kind: str
    file: str
    sha256: str
    spec: dict[str, Any] = field(repr=False)

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class Manifest:
    directory: Path
    models: dict[str, ModelEntry]
    default_detector: str
    default_embedder: str

    def get(self, model_id: str, kind: str | None = None) -> ModelEntry:
        """The entry for `model_id`; an unknown id lists the known ones (of `kind`, if given)."""
        entry = self.models.get(model_id)
        if entry is None or (kind is not None and entry.kind != kind):
            known = sorted(m for m, e in self.models.items() if kind is None or e.kind == kind)
            what = kind or "model"
            raise ModelError(
                f"unknown {what} '{model_id}' in {self.directory / MANIFEST_NAME}; known: {', '.join(known) or 'none'}"
            )
        return entry

    def path(self, entry: ModelEntry) -> Path:
        return self.directory / entry.file


def default_models_dir() -> Path:
    """$EDGE_MODELS_DIR, else the models inside the installed package (`edge/models/`, which
    only a built wheel has), else the checkout's `models/` (see `edge.resources`)."""
    env = os.environ.get("EDGE_MODELS_DIR")
    return Path(env) if env else shipped("models")


def load_manifest(models_dir: Path | None = None) -> Manifest:
    directory = Path(models_dir) if models_dir is not None else default_models_dir()
    path = directory / MANIFEST_NAME
    if path.exists() and not path.is_file():
        raise ModelError(f"model manifest {path} is not a file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        models = {
            model_id: ModelEntry(model_id, rec["kind"], rec["file"], rec["sha256"], rec)
            for model_id, rec in raw["models"].items()
        }
        return Manifest(directory, models, raw["default_detector"], raw["default_embedder"])
    except FileNotFoundError:
        raise ModelError(f"model manifest not found: {path}") from None
    except OSError as e:
        raise ModelError(f"cannot read model manifest {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # ValueError: JSON or UTF-8
        raise ModelError(f"model manifest {path} is malformed: {e!r}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_file(manifest: Manifest, entry: ModelEntry) -> Path:
    """Return the model's path after checking it exists and matches the manifest's sha256."""
    path = manifest.path(entry)
    if not path.is_file():
        raise ModelError(f"model file missing: {path} (model '{entry.model_id}')")
    actual = file_sha256(path)
    if actual != entry.sha256:
        raise ModelError(
            f"model file {path} does not match the manifest: sha256 {actual[:12]}..., "
            f"expected {entry.sha256[:12]}... (corrupt or replaced; rebuild or re-flash models/)"
        )
    return path


def interpreter_class() -> type:
    """`ai_edge_litert`'s Interpreter when installed (numpy 2), else `tflite_runtime`'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "no TFLite runtime installed: pip install 'edge[litert]' (numpy 2) "
                "or 'edge[tflite]' (tflite-runtime, numpy<2)"
            ) from None
    return Interpreter


# What LiteRT's native code prints on fd 2 for every interpreter it creates
RUNTIME_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate"


@contextmanager
def native_stderr_without(prefix: str) -> Iterator[None]:
    """Hold what anything writes to fd 2 meanwhile, then pass on every line except `prefix`'s.

    Native code writes to the descriptor, not to `sys.stderr`, so only swapping fd 2 can keep
    a banner out of every command's output. Lines held are re-emitted, not lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True) if not line.startswith(prefix.encode())]
            if kept:
                os.write(2, b"".join(kept))


def load_interpreter(manifest: Manifest, entry: ModelEntry, threads: int = 1) -> Any:
    """A ready (tensors allocated) interpreter for a verified model file."""
    path = verify_model_file(manifest, entry)
    interpreter_cls = interpreter_class()
    try:
        with native_stderr_without(RUNTIME_BANNER):
            interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"cannot load model {path}: {e}") from e
    log.debug("loaded %s (%s, sha256 %s, %d threads)", path, entry.kind, entry.short_sha, threads)
    return interpreter
