"""An evaluation report on disk: `report.json` (everything) and `report.md` (the tables a person reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.vision.false_alerts import Expectation, per_1000


def percent(x: float) -> str:
    """Two decimals from 1% up, two significant digits below (0.0050%), so small rates stay readable."""
    if x == 0 or x >= 0.01:
        return f"{100 * x:.2f}%"
    return f"{100 * x:.2g}%"


def pct(rate: dict[str, Any]) -> str:
    """ "1.23% (4/325, 0.48-3.12%)": a rate with its counts and 95% interval."""
    lo, hi = rate["ci95"]
    value = "n/a" if rate["rate"] is None else percent(rate["rate"])
    return f"{value} ({rate['k']}/{rate['n']}, {percent(lo)}-{percent(hi)})"


def _tar_cell(level: dict[str, Any]) -> str:
    if not level["supported"]:
        return f"not supported ({level['reason']})"
    return f"{pct(level['tar'])} at {level['threshold']:.4f}"


def _group_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for name, g in report["groups"].items():
        at = g["at_threshold"]
        flag = "yes" if g["sizeable"] else f"no: {g['not_sizeable_because']}"
        auc = "n/a" if g["roc_auc"] is None else f"{g['roc_auc']:.4f}"
        rows.append(
            f"| {name} | {g['identities']} | {g['images']} ({g['images_failed']} failed) | {flag} | "
            f"{pct(at['fmr'])} | {pct(at['fnmr'])} | {auc} |"
        )
    return rows


def _operating_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for point in report["operating_points"]:
        rows.append(
            f"| {point['name']} | {point['mode']} | {point['threshold']:.4f} | {pct(point['overall']['fmr'])} | "
            f"{pct(point['overall']['fnmr'])} |"
        )
    return rows


def _reduction(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def mode_section(report: dict[str, Any]) -> list[str]:
    """Both matching modes at their calibrated entries for one target, per group, with the
    relative FNMR reduction of per_template over global."""
    compared = report["modes"]
    if compared.get("target_fmr") is None:
        return [f"Not compared: {compared['reason']}."]
    modes, reduction = compared["modes"], compared["fnmr_reduction"]
    lines = [
        f"Each mode at its own calibration-table entry for target FMR <= {compared['target_fmr']:g} "
        f"({compared['scope']}). FNMR reduction: 1 - FNMR(per_template) / FNMR(global).",
        "",
    ]
    missing = [f"- {mode}: {m['reason']}" for mode, m in modes.items() if not m["available"]]
    if missing:
        return lines + ["Not compared:", *missing]
    g, p = modes["global"], modes["per_template"]
    lines += [
        f"| group | sizeable | global FMR at {g['threshold']:.4f} | global FNMR | per_template FMR at knob "
        f"{p['threshold']:.4f} | per_template FNMR | FNMR reduction |",
        "|---|---|---|---|---|---|---|",
        f"| **overall** | | {pct(g['overall']['fmr'])} | {pct(g['overall']['fnmr'])} | {pct(p['overall']['fmr'])} | "
        f"{pct(p['overall']['fnmr'])} | **{_reduction(reduction['overall'])}** |",
    ]
    for name, at in g["groups"].items():
        other, group = p["groups"][name], report["groups"][name]
        lines.append(
            f"| {name} | {'yes' if group['sizeable'] else 'no'} | {pct(at['fmr'])} | {pct(at['fnmr'])} | "
            f"{pct(other['fmr'])} | {pct(other['fnmr'])} | {_reduction(reduction['groups'][name])} |"
        )
    return lines


def _alerts(figure: dict[str, Any]) -> str:
    """A report's false alerts per 1,000 scans with its interval, written as the device writes them."""
    ci = figure["ci95"]
    return per_1000(Expectation(figure["per_1000"], None if ci is None else (ci[0], ci[1])))


def _check(value: bool | None, yes: str, no: str) -> str:
    return "n/a" if value is None else yes if value else no


def watchlist_head(first: str) -> list[str]:
    """The header of a table of `watchlist_row`s, whose first column is `first`."""
    return [
        f"| {first} | scans | false alerts | observed per 1,000 | predicted, mixed | predicted, bound | "
        "observed in mixed interval | intervals overlap | above bound |",
        "|---|---|---|---|---|---|---|---|---|",
    ]


def watchlist_row(name: str, row: dict[str, Any]) -> str:
    """One row of simulated watchlists: scans, false alerts, observed and predicted per 1,000, checks."""
    predicted = row["predicted"]
    return (
        f"| {name} | {row['scans']} | {row['alerts']} | {_alerts(row['observed'])} | {_alerts(predicted['mixed'])} | "
        f"{_alerts(predicted['bound'])} | {_check(row['in_mixed_ci95'], 'yes', 'no')} | "
        f"{_check(row['overlaps_mixed_ci95'], 'yes', '**no**')} | {_check(row['above_bound'], '**yes**', 'no')} |"
    )


def watchlist_section(section: dict[str, Any]) -> list[str]:
    """Per list size: observed false alerts per 1,000 scans of passers-by against the device's
    predictions, overall and per group of the passer-by."""
    point, rules = section["operating_point"], section["rules"]
    pools = f", each list and its passers-by from one {section['pools']}" if section["pools"] else ""
    lines = [
        f"{section['lists']} random watchlists per size, up to {section['photos']} photos enrolled per person "
        f"(seed {section['seed']}{pools}), at threshold {point['threshold']:.4f} ({point['mode']}; {point['origin']}).",
        "",
        f"- false alert: {rules['alert']}",
        f"- predicted: {rules['predicted']}",
        f"- observed: {rules['observed']}",
        f"- checks: {rules['checks']}",
    ]
    for entry in section["sizes"]:
        lines += ["", f"### Watchlists of {entry['size']}", ""]
        if not entry["supported"]:
            lines.append(f"Not simulated: {entry['reason']}.")
            continue
        lines += [
            f"{entry['templates_per_list']:g} templates per list on average.",
            "",
            *watchlist_head("passers-by"),
            watchlist_row("**all**", entry["overall"]),
            *(watchlist_row(group, row) for group, row in entry["groups"].items()),
        ]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    d, o, t = report["dataset"], report["overall"], report["threshold"]
    models = report["models"]
    failures = report["failures"]
    lines = [
        f"# Evaluation: {d['description']}",
        "",
        f"- dataset: `{d['path']}` (sha256 `{d['sha256']}`), images under `{d['root']}`: {d['images']} images, "
        f"{d['identities']} identities, {d['pairs']} pairs ({d['genuine_pairs']} genuine, "
        f"{d['impostor_pairs']} impostor)",
        f"- models: detector `{models['detector']['id']}` (sha256 `{models['detector']['sha256'][:12]}`), "
        f"embedder `{models['embedder']['id']}` (sha256 `{models['embedder']['sha256'][:12]}`); edge "
        f"{report['software']['edge']}; run {report['created_at']}",
        f"- threshold in force: **{t['value']:.4f}**, mode {t['mode']} ({t['source']}); {report['rules']['decision']}",
        f"- rates: k/n and {report['rules']['interval']}; {report['rules']['failures']}",
        f"- {report['rules']['sizeable']}; {report['rules']['support']}",
        "",
        "## Overall",
        "",
        "| figure | value |",
        "|---|---|",
        f"| ROC AUC (failed pairs as errors) | {o['roc_auc']} |",
        f"| ROC AUC (pairs both of whose images gave a descriptor) | {o['roc_auc_compared']} |",
        f"| FMR at {t['value']:.4f} | {pct(o['at_threshold']['fmr'])} |",
        f"| FNMR at {t['value']:.4f} | {pct(o['at_threshold']['fnmr'])} |",
        *[f"| TAR at FMR {lv['fmr']:g} | {_tar_cell(lv)} |" for lv in o["tar_at_fmr"]],
        f"| genuine pairs failed (counted as false non-matches) | {o['genuine_pairs_failed']} of "
        f"{o['genuine_pairs']} |",
        f"| impostor pairs failed (not compared) | {o['impostor_pairs_failed']} |",
        f"| images without a descriptor | {failures['images']} of {d['images']}: "
        + (", ".join(f"{k} {v}" for k, v in failures["by_reason"].items()) or "none")
        + " |",
        "",
        f"## Per group at {t['value']:.4f}",
        "",
        "FMR over impostor pairs with both images in the group, FNMR over the group's genuine pairs.",
        "",
        "| group | identities | images | sizeable | FMR | FNMR | ROC AUC |",
        "|---|---|---|---|---|---|---|",
        *_group_rows(report),
        "",
        "## Matching modes side by side",
        "",
        *mode_section(report),
        "",
        "## Operating points",
        "",
        "| operating point | mode | threshold | FMR | FNMR |",
        "|---|---|---|---|---|",
        *_operating_rows(report),
        "",
        "![DET curve](det.png)",
        "",
        "![per-group FMR and FNMR](groups.png)",
        "",
    ]
    if "watchlists" in report:
        lines += ["## Simulated watchlists", "", *watchlist_section(report["watchlists"]), ""]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write report.json and report.md into `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
