"""The deployment pages' forms read into what `edge.central.deployments.watchlist` takes: a
deployment from the create form, times given in UTC, and uploaded photos written into a private
scratch folder for the quality gate (each under its own base name, which the watchlist keeps)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from fastapi import UploadFile

from edge.central.deployments.watchlist import DeploymentSpec
from edge.errors import OperatorError

MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 10 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FormError(OperatorError):
    """A deployment form holds a value that cannot be used."""


def form_time(text: str, what: str) -> datetime:
    """A form's time: ISO 8601, read as UTC when it names no zone (the form says UTC)."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FormError(f"{what} {text!r} is not a time: use e.g. 2026-12-05T08:00 (UTC)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def spec_of(form: dict[str, str], by: str) -> DeploymentSpec:
    """The create form as a deployment (`watchlist.create` checks the rest)."""
    fmr, days = form["target_fmr"].strip(), form["retention_days"].strip() or "0"
    try:
        target_fmr = float(fmr) if fmr else None
        retention = int(days)
    except ValueError:
        raise FormError("the target FMR is a number (e.g. 0.001) and the retention a whole number of days") from None
    return DeploymentSpec(
        form["name"].strip(),
        tuple(line.strip() for line in form["devices"].splitlines() if line.strip()),
        form_time(form["starts_at"], "start"),
        form_time(form["ends_at"], "end"),
        form["purpose"],
        form["authorised_by"],
        by,
        retention,
        target_fmr,
    )


async def saved_photos(uploads: list[UploadFile], folder: Path) -> list[Path]:
    """The uploaded photos written into `folder` (private), each under its own base name."""
    uploads = [u for u in uploads if u.filename]
    if not uploads:
        raise FormError("choose one or more photos of the person")
    if len(uploads) > MAX_PHOTOS:
        raise FormError(f"at most {MAX_PHOTOS} photos at a time, {len(uploads)} were sent")
    saved = []
    for i, upload in enumerate(uploads):
        data = await upload.read(MAX_PHOTO_BYTES + 1)
        name = _UNSAFE.sub("_", Path(upload.filename or "").name).strip("._")[:100] or f"photo-{i + 1}"
        if len(data) > MAX_PHOTO_BYTES:
            raise FormError(f"{name} is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB")
        path = folder / str(i) / name
        path.parent.mkdir()
        path.write_bytes(data)
        saved.append(path)
    return saved
