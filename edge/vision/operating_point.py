"""The threshold in force and the false match rate it stands for.

A raw distance threshold means little to an operator; a false match rate does. `edge
calibrate` measures, per embedder, which threshold gives which FMR (overall and in the worst
demographic group) and records it in the manifest's `calibration_table`. The device may then
be configured with `target_fmr` instead of a threshold, and every threshold in force is
reported with the FMR it was measured at, when one is known.

Each enrolled person adds their own chance of a false match (`edge.vision.false_alerts`): the
gallery's size multiplies the error, which is why the device shows the expected false alerts
per 1,000 scans and can refuse to start above a limit.

Besides the rate it was calibrated for, an operating point carries two rates at its threshold,
each with the calibration data's 95% interval, for the two expectations of false alerts:
- `mixed_fmr`: over all impostor comparisons of the calibration data, a crowd mixed as that data
  is (what a street of strangers of every group is expected to raise);
- `bound_fmr`: among impostors of the worst demographic group, compared within their group (what a
  crowd made entirely of the enrolled person's own group raises, at worst).

Every entry and curve belongs to a matching mode (`match.thresholds`): "global" thresholds are
distances, "per_template" ones are the knob that multiplies each template's cohort scale. An
entry recorded before the modes existed has no "mode" and is global. A target resolves only to
an entry of the configured mode; the manifest's `operating_point` names the default target and
scope (its "mode" records the run that set it), which each mode reads from its own entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge.vision.rates import wilson
from edge.vision.runtime import ModelEntry


@dataclass(frozen=True)
class MeasuredRate:
    """A per-comparison false match rate with its 95% interval (None: the data did not say)."""

    fmr: float
    ci95: tuple[float, float] | None

    def as_dict(self) -> dict[str, Any]:
        def six(x: float) -> float:  # an estimate: six significant digits, not float noise
            return float(f"{x:.6g}")

        return {"fmr": six(self.fmr), "ci95": None if self.ci95 is None else [six(x) for x in self.ci95]}


def _measured(cal: dict[str, Any]) -> MeasuredRate:
    ci = cal.get("fmr_ci95")
    return MeasuredRate(float(cal["fmr"]), None if ci is None else (float(ci[0]), float(ci[1])))


class OperatingPointError(ValueError):
    """The requested operating point cannot be honoured; the message says what to change."""


@dataclass(frozen=True)
class OperatingPoint:
    """threshold: Euclidean distance in force (lower is stricter); in mode "per_template" the knob
        that multiplies each template's scale.
    fmr: per-comparison false match rate measured at it (worst group for scope
        "worst_group"), or None when no calibration covers it.
    target_fmr, scope: what was asked for, when the threshold came from a target.
    origin: in words, where the threshold came from.
    mode: the matching mode the threshold is for ("per_template" or "global").
    mixed: the FMR over all impostor comparisons at the threshold (a mixed crowd), if known.
    bound: the worst group's within-group FMR at the threshold (a crowd of one group), if known.
    """

    threshold: float
    fmr: float | None
    target_fmr: float | None
    scope: str | None
    origin: str
    mode: str = "global"
    mixed: MeasuredRate | None = None
    bound: MeasuredRate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "fmr": self.fmr,
            "target_fmr": self.target_fmr,
            "scope": self.scope,
            "origin": self.origin,
            "mode": self.mode,
            "mixed_fmr": None if self.mixed is None else self.mixed.as_dict(),
            "bound_fmr": None if self.bound is None else self.bound.as_dict(),
        }


def _table(entry: ModelEntry) -> dict[str, Any]:
    return entry.spec.get("calibration_table") or {}


def _mode(cal: dict[str, Any]) -> str:
    return str(cal.get("mode", "global"))


def _calibrated(entry: ModelEntry, target_fmr: float, scope: str, mode: str, origin: str) -> OperatingPoint:
    entries = _table(entry).get("entries", [])
    for cal in entries:
        if math.isclose(cal["target_fmr"], target_fmr, rel_tol=1e-9) and (cal["scope"], _mode(cal)) == (scope, mode):
            knob = float(cal["threshold"])
            point = OperatingPoint(knob, float(cal["fmr"]), target_fmr, scope, origin, mode)
            return _with_rates(point, entry, cal)
    known = ", ".join(f"{c['target_fmr']:g} ({c['scope']}, {_mode(c)})" for c in entries) or "none"
    raise OperatingPointError(
        f"embedder '{entry.model_id}' has no {mode} calibration for target_fmr {target_fmr:g} ({scope}); "
        f"calibrated: {known}. Run `edge calibrate --identities CSV --root DIR --target-fmr {target_fmr:g}"
        f"{' --worst-group' if scope == 'worst_group' else ''} --mode {mode}` on data that supports it "
        f"(at least {math.ceil(3 / target_fmr)} impostor comparisons per group), or choose a calibrated target"
        + ("" if mode == "global" else ', or set match.thresholds = "global"')
    )


def _curve(entry: ModelEntry, mode: str) -> dict[str, Any] | None:
    table = _table(entry)
    if "fmr_curves" in table:
        return table["fmr_curves"].get(mode)
    return table.get("fmr_curve") if mode == "global" else None  # recorded before the modes: global


def _from_curve(
    entry: ModelEntry, cal: dict[str, Any] | None, threshold: float, scope: str, mode: str
) -> MeasuredRate | None:
    """The rate of `scope` at `threshold` on the mode's curve, when the curve was measured on the
    entry's data (or there is no entry); its interval from the curve's impostor count (overall)."""
    curve = _curve(entry, mode)
    if curve is None or (cal is not None and curve.get("dataset_sha256") != cal.get("dataset_sha256")):
        return None
    fmr = fmr_at(entry, threshold, scope, mode)
    if fmr is None:
        return None
    pairs = curve.get("impostor_pairs")
    ci = wilson(round(fmr * pairs), pairs) if scope == "overall" and pairs else None
    return MeasuredRate(fmr, ci)


def _worst_group(cal: dict[str, Any]) -> MeasuredRate | None:
    """The highest within-group FMR an entry recorded among the groups with data enough for its
    target (any group where none has), with its interval."""
    groups = [g for g in (cal.get("groups") or {}).values() if g.get("fmr") is not None]
    supported = [g for g in groups if g.get("supports_target")] or groups
    return _measured(max(supported, key=lambda g: g["fmr"])) if supported else None


def _with_rates(point: OperatingPoint, entry: ModelEntry, cal: dict[str, Any] | None) -> OperatingPoint:
    """The point with its mixed-crowd and one-group rates: from the calibration entry where it
    recorded them, else from the mode's curve on the same data."""
    mixed = bound = None
    if cal is not None:
        if "overall" in cal:
            mixed = _measured(cal["overall"])
        elif cal["scope"] == "overall":
            mixed = _measured(cal)
        bound = _measured(cal) if cal["scope"] == "worst_group" else _worst_group(cal)
    mixed = mixed or _from_curve(entry, cal, point.threshold, "overall", point.mode)
    bound = bound or _from_curve(entry, cal, point.threshold, "worst_group", point.mode)
    return replace(point, mixed=mixed, bound=bound)


def fmr_at(entry: ModelEntry, threshold: float, scope: str = "worst_group", mode: str = "global") -> float | None:
    """FMR at a threshold (the knob in mode per_template), interpolated on the mode's calibration
    curve; None outside it or without one."""
    curve = _curve(entry, mode)
    if not curve or scope not in curve or curve[scope][0] is None:
        return None
    thresholds = np.asarray(curve["thresholds"], float)
    if not thresholds[0] <= threshold <= thresholds[-1]:
        return None
    return float(np.interp(threshold, thresholds, np.asarray(curve[scope], float)))


def resolve(
    entry: ModelEntry,
    threshold: float | None,
    target_fmr: float | None,
    scope: str = "worst_group",
    mode: str = "global",
) -> OperatingPoint:
    """The operating point of matching mode `mode` from config: a threshold (the knob in mode
    per_template), a target FMR, or the manifest's default.

    Precedence: a configured threshold, then a configured target FMR (which must have a
    calibration entry of the mode), then the manifest's `operating_point` target (likewise),
    then the embedder's own threshold (dlib's 0.6, with no FMR attached unless the curve covers it).
    """
    if threshold is not None and target_fmr is not None:
        raise OperatingPointError("match.threshold and match.target_fmr are alternatives: set one")
    if threshold is not None:
        fmr = fmr_at(entry, threshold, scope, mode)
        return _with_rates(OperatingPoint(threshold, fmr, None, scope, "configured threshold", mode), entry, None)
    if target_fmr is not None:
        return _calibrated(entry, target_fmr, scope, mode, f"configured target_fmr {target_fmr:g} ({scope}, {mode})")
    default = entry.spec.get("operating_point")
    if default:
        target, chosen = float(default["target_fmr"]), default["scope"]
        return _calibrated(entry, target, chosen, mode, f"manifest default: target_fmr {target:g} ({chosen}, {mode})")
    own = float(entry.spec["threshold"])
    point = OperatingPoint(own, fmr_at(entry, own, scope, mode), None, scope, "embedder default (uncalibrated)", mode)
    return _with_rates(point, entry, None)
