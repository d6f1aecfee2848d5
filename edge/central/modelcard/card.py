"""`models/MODEL_CARD.md` from one evaluation report: what the model is for, and how often it is wrong, for whom.

The card is a pure function of report.json (which carries the manifest's calibration table as
it was at the run), its path and its sha256, so a test can regenerate it and compare byte for
byte. It has no clock of its own: the only date in it is the report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.central.evaluation.report import pct, watchlist_head, watchlist_row
from edge.central.evaluation.stats import Rate
from edge.central.modelcard.embedders import comparison_rows
from edge.central.modelcard.modes import arm_rows, cohort_choice, cohort_rows, side_by_side
from edge.central.modelcard.text import DATA_LIMITS, INTENDED_USE, NOT_FIT_FOR

DESCRIPTORS = {
    "single": "A face's descriptor is the network's output for its aligned chip.",
    "mirror_mean": "A face's descriptor is the mean of the network's outputs for its aligned chip and the "
    "chip's mirror image (two inferences a face).",
}
REFERENCE_THRESHOLD = 0.6  # dlib's threshold, the embedder's default before calibration
GALLERY_SIZES = (10, 100, 1000)


def _sweep_rates(figures: dict[str, Any], threshold: float) -> tuple[dict, dict] | None:
    """(FMR, FNMR) at a threshold of the report's sweep, with intervals; None when it is not on the grid."""
    sweep = figures["sweep"]
    if threshold not in sweep["thresholds"]:
        return None
    i = sweep["thresholds"].index(threshold)
    return (
        Rate(sweep["false_matches"][i], sweep["impostor_pairs"]).to_json(),
        Rate(sweep["false_non_matches"][i], sweep["genuine_pairs"]).to_json(),
    )


def _find(items: list[dict[str, Any]], target: float, scope: str, mode: str) -> dict[str, Any] | None:
    return next(
        (x for x in items if (x.get("target_fmr"), x.get("scope"), x.get("mode", "global")) == (target, scope, mode)),
        None,
    )


def _points(report: dict[str, Any]) -> tuple[dict, dict | None, dict | None, dict | None]:
    """(operating point, its calibration entry, the overall-FMR point at the same target, its entry)."""
    calibration = report["calibration"]
    chosen = calibration.get("operating_point")
    if not chosen:
        in_force = report["operating_points"][0]
        return in_force, None, None, None
    target, scope, mode = chosen["target_fmr"], chosen["scope"], report["threshold"]["mode"]
    points, entries = report["operating_points"], calibration["entries"]
    in_force = _find(points, target, scope, mode)
    if in_force is None:
        raise ValueError(f"the report has no figures for its operating point (target FMR {target}, {scope})")
    return (
        in_force,
        _find(entries, target, scope, mode),
        _find(points, target, "overall", mode),
        _find(entries, target, "overall", mode),
    )


def _point_rows(
    report: dict[str, Any], default: dict, default_entry: dict | None, overall: dict | None, overall_entry: dict | None
) -> list[str]:
    rows = [
        "| operating point | threshold | set by | FMR (all impostor pairs) | FNMR (all genuine pairs) |",
        "|---|---|---|---|---|",
    ]
    entries = [("**default**: " + default["name"], default, default_entry)]
    if overall is not None:
        entries.append((overall["name"], overall, overall_entry))
    for label, point, entry in entries:
        decided = (entry["deciding_group"] or "all impostor pairs") if entry else point.get("source", "")
        rows.append(
            f"| {label} | {point['threshold']:.4f} | {decided} | {pct(point['overall']['fmr'])} | "
            f"{pct(point['overall']['fnmr'])} |"
        )
    reference = _sweep_rates(report["overall"], REFERENCE_THRESHOLD)
    if reference is not None:
        rows.append(
            f"| dlib's threshold (for comparison) | {REFERENCE_THRESHOLD:.4f} | dlib | {pct(reference[0])} | "
            f"{pct(reference[1])} |"
        )
    return rows


def _group_rows(report: dict[str, Any], default: dict, overall: dict | None) -> list[str]:
    head = "| group | identities | impostor / genuine pairs | sizeable | FMR at default | FNMR at default |"
    rule = "|---|---|---|---|---|---|"
    if overall is not None:
        head += " FMR at overall calibration | FNMR at overall calibration |"
        rule += "---|---|"
    rows = [head, rule]
    for name, g in report["groups"].items():
        flag = "yes" if g["sizeable"] else f"**no**: {g['not_sizeable_because']}"
        at = default["groups"][name]
        row = (
            f"| {name} | {g['identities']} | {g['impostor_pairs']} / {g['genuine_pairs']} | {flag} | "
            f"{pct(at['fmr'])} | {pct(at['fnmr'])} |"
        )
        if overall is not None:
            other = overall["groups"][name]
            row += f" {pct(other['fmr'])} | {pct(other['fnmr'])} |"
        rows.append(row)
    return rows


def _alert_rows(report: dict[str, Any], default: dict, default_entry: dict | None) -> list[str]:
    rates = [("overall", default["overall"]["fmr"]["rate"])]
    if default_entry is not None and default_entry.get("deciding_group"):
        rates.append(("worst sizeable group", default_entry["fmr"]))
    rows = [
        "| per-comparison FMR | " + " | ".join(f"gallery of {n}" for n in GALLERY_SIZES) + " |",
        "|---|" + "---|" * len(GALLERY_SIZES),
    ]
    for label, f in rates:
        cells = " | ".join(f"{1000 * f * n:.1f}" for n in GALLERY_SIZES)  # edge.vision.false_alerts: the sum
        rows.append(f"| {label}: {f:.3g} | {cells} |")
    return rows


@dataclass(frozen=True)
class Cited:
    """An input of the card as the card cites it: its content, path and sha256."""

    content: dict[str, Any]
    path: str
    sha256: str

    def __str__(self) -> str:
        return f"`{self.path}`, sha256 `{self.sha256}`"


def _watchlist_rows(report: dict[str, Any]) -> list[str]:
    """The simulated watchlists of the report (`edge eval --watchlists`), all passers-by per list size."""
    section = report.get("watchlists")
    if section is None:
        return []
    rows = [
        "",
        f"Simulated on the evaluation's people (`edge eval --watchlists`): {section['lists']} random lists per size, "
        f"up to {section['photos']} photos enrolled each through the device's gallery and matcher, every other "
        "person's photos scanned as passers-by; observed false alerts against the device's prediction "
        "(per group in report.md):",
        "",
        *watchlist_head("watchlist"),
    ]
    return rows + [_size_row(entry) for entry in section["sizes"]]


def _out_of_sample_rows(cited: Cited | None) -> list[str]:
    """The watchlists of `scripts/check_watchlists_split.py`: people no calibration saw, with the
    mixed and one-group rates measured on other people of the same population."""
    if cited is None:
        return []
    split = cited.content
    rates, images, simulated = split["rates"], split["images"], split["simulated"]

    def rate(name: str, basis: str) -> str:
        r = rates[name][f"{basis}_fmr"]
        return f"{r['fmr']:.3g} ({r['ci95'][0]:.2g}-{r['ci95'][1]:.2g})"

    rows = [
        "",
        f"Out of sample ({cited}): the cohort's people split by a hash of the name; a cohort model from "
        f"{images['cohort_model']:,} images of half of them, the mixed and one-group (worst gender) rates at knob "
        f"{split['knob']} measured on {images['calibration']:,} images of a quarter, {split['lists']} random lists "
        f"per size drawn from the last quarter ({simulated['people']:,} people, {simulated['images']:,} images). "
        f"The quarter's mixed rate is {rate('calibration_quarter', 'mixed')} and its bound "
        f"{rate('calibration_quarter', 'bound')}; DEV's at the same knob, which the device states, are "
        f"{rate('shipped_dev', 'mixed')} and {rate('shipped_dev', 'bound')}: the figure holds for a crowd mixed as "
        "the calibration data, and moves with the crowd.",
        "",
        *watchlist_head("watchlist"),
    ]
    return rows + [_size_row(entry) for entry in split["sizes"]]


def _size_row(entry: dict[str, Any]) -> str:
    name = f"{entry['size']} {'person' if entry['size'] == 1 else 'people'}"
    return watchlist_row(name, entry["overall"]) if entry["supported"] else f"| {name} | {entry['reason']} |"


def _tar_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for level in report["overall"]["tar_at_fmr"]:
        value = (
            f"{pct(level['tar'])} at threshold {level['threshold']:.4f}"
            if level["supported"]
            else f"not supported ({level['reason']})"
        )
        rows.append(f"- TAR at FMR {level['fmr']:g}: {value}")
    return rows


def render(
    report: dict[str, Any],
    report_path: str,
    report_sha256: str,
    card_path: str,
    split: Cited | None = None,
    embedders: Cited | None = None,
) -> str:
    """The model card for `report` (read from `report_path`, whose bytes have `report_sha256`),
    to be written at `card_path` (both as the commands at its end name them), with the out-of-sample
    watchlists of `scripts/check_watchlists_split.py` where `split` is given and the embedder
    comparison of `scripts/compare_embedders.py --summary` where `embedders` is."""
    d, models, failures = report["dataset"], report["models"], report["failures"]
    default, default_entry, overall, overall_entry = _points(report)
    small = [f"{n} ({g['not_sizeable_because']})" for n, g in report["groups"].items() if not g["sizeable"]]
    reasons = ", ".join(f"{k}: {v}" for k, v in failures["by_reason"].items()) or "none"
    gate = ", ".join(f"{k} {v}" for k, v in report["quality_gate"].items())
    if default_entry is not None:
        default_text = (
            f"The default operating point is the calibration table's entry **FMR <= "
            f"{default_entry['target_fmr']:g}, {default_entry['scope']}**: threshold "
            f"{default_entry['threshold']:.4f}, set by {default_entry['deciding_group'] or 'all pairs'}."
        )
    else:
        default_text = f"No calibrated operating point: the threshold in force is {default['threshold']:.4f}."
    lines = [
        f"# Model card: {models['embedder']['id']} with {models['detector']['id']}",
        "",
        f"Generated by `scripts/make_model_card.py` from `{report_path}` (sha256 `{report_sha256}`), an "
        f"`edge eval` run of {report['created_at']} with edge {report['software']['edge']}. Do not edit by hand: "
        "rerun the commands at the end.",
        "",
        "## The model",
        "",
        f"- Detector `{models['detector']['id']}` (sha256 `{models['detector']['sha256']}`), the project's "
        "aligner, the quality gate, embedder "
        f"`{models['embedder']['id']}` (sha256 `{models['embedder']['sha256']}`): a TFLite port of dlib's "
        f"face descriptor ResNet. {DESCRIPTORS[models['embedder'].get('descriptor', 'single')]} Two faces are "
        "called the same person when the Euclidean distance between their descriptors is at most the threshold.",
        f"- Quality gate as evaluated: {gate}.",
        f"- {default_text}",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Not fit for",
        "",
        NOT_FIT_FOR,
        "",
        "## Data and its limits",
        "",
        f"- Evaluated on `{d['path']}` (sha256 `{d['sha256']}`), {d['description']}: {d['images']} images of "
        f"{d['identities']} identities, {d['genuine_pairs']} genuine and {d['impostor_pairs']} impostor pairs.",
        f"- {failures['images']} images gave no descriptor ({reasons}); every genuine pair they are in counts "
        "as a false non-match.",
        f"- Groups too small to measure ({report['rules']['sizeable']}): {', '.join(small) or 'none'}.",
        DATA_LIMITS,
        "",
        "## Error rates",
        "",
        f"Rates are k/n with a {report['rules']['interval']}. FMR: impostor pairs called the same person; per "
        "group, over impostor pairs with both images in the group. FNMR: genuine pairs not called the same "
        f"person, failures included. {report['rules']['support'][0].upper()}{report['rules']['support'][1:]}.",
        "",
        *_point_rows(report, default, default_entry, overall, overall_entry),
        "",
        "Per group, at the default operating point and at the overall-FMR calibration with the same target:",
        "",
        *_group_rows(report, default, overall),
        "",
        f"Overall ROC AUC {report['overall']['roc_auc']} (failed pairs as errors), "
        f"{report['overall']['roc_auc_compared']} over pairs both of whose images gave a descriptor.",
        *_tar_rows(report),
        "",
        "## Per-template and global thresholds side by side",
        "",
        *side_by_side(report),
        "",
        "## Calibration at watchlist scale",
        "",
        "A gallery of 1,000 people needs per-comparison FMRs near 1e-4 and below; DEV cannot support them. "
        "The cohort's all-against-all comparisons can, overall and per gender, as far as the rule of three allows:",
        "",
        *cohort_rows(report),
        "",
        "## The cohort model",
        "",
        *cohort_choice(report),
        "",
        "## A calibration made on x86, used on an aarch64 board",
        "",
        *arm_rows(report),
        "",
        "## Expected false alerts per 1,000 strangers",
        "",
        "Each enrolled person adds their own chance of falsely matching a stranger, so the device expects "
        "1,000 x the sum of its people's FMRs per 1,000 scans of strangers: at per-comparison FMR f and one "
        "template each, 1,000 x N x f (more templates multiply a person's FMR by the factor measured on the "
        "cohort, `edge gallery list` shows it; a figure above 1,000 means about every stranger raises an alert):",
        "",
        *_alert_rows(report, default, default_entry),
        *_watchlist_rows(report),
        *_out_of_sample_rows(split),
        "",
        "## Other embedders measured",
        "",
        *comparison_rows(embedders.content if embedders else None, str(embedders)),
        "",
        "## Rerun it on your own data",
        "",
        "Write a CSV with columns `path,identity,group` (one face per image; add `source` if identity labels "
        "come from different sources) or a pairs CSV with the columns of `../shared/data/pairs.csv`, then:",
        "",
        "```bash",
        "edge eval --identities my.csv --root my-images/ --out my-eval/      # report.json, report.md, det.png, "
        "groups.png",
        "cp -r models/ my-models/",
        "edge calibrate --identities my.csv --root my-images/ --models my-models/ --target-fmr 0.01 --worst-group "
        "--operating-point",
        "edge eval --identities my.csv --root my-images/ --models my-models/ --out my-eval/",
        "python scripts/make_model_card.py --report my-eval/report.json --out my-models/MODEL_CARD.md",
        "```",
        "",
        "This card's figures came from:",
        "",
        "```bash",
        *_shipped_commands(report, report_path, card_path, split, embedders),
        "```",
        "",
    ]
    return "\n".join(lines)


def _shipped_commands(
    report: dict[str, Any], report_path: str, card_path: str, split: Cited | None, embedders: Cited | None
) -> list[str]:
    """The commands that made the report's calibration entries, the report and the card, each
    with the report's embedder chosen (`models.embedder` through the environment)."""
    d = report["dataset"]
    embedder = f"EDGE_MODELS__EMBEDDER={report['models']['embedder']['id']} "
    data = f"--{d['kind']} {d['path']} --root {d['root']}"
    if d["group_column"] != "group":
        data += f" --group-column {d['group_column']}"
    if d["kind"] == "identities" and d["within"] != "source":
        data += f" --within {d['within'] or '-'}"
    chosen = report["calibration"].get("operating_point") or {}
    commands = []
    for entry in report["calibration"].get("entries", []):
        mode = entry.get("mode", "global")
        flags = (" --worst-group" if entry["scope"] == "worst_group" else "") + f" --mode {mode}"
        if entry["dataset_sha256"] != d["sha256"]:
            if "dataset_root" not in entry:
                commands.append(
                    f"# FMR <= {entry['target_fmr']:g} {entry['scope']} ({mode}): calibrated on {entry['dataset']} "
                    f"(sha256 {entry['dataset_sha256']})"
                )
                continue
            source = f"--{entry['dataset_kind']} {entry['dataset_file']} --root {entry['dataset_root']}"
            source += f" --group-column {entry['group_column']} --within {entry['within'] or '-'}"
            commands.append(f"{embedder}edge calibrate {source} --target-fmr {entry['target_fmr']:g}{flags}")
            continue
        chosen_key = (chosen.get("target_fmr"), chosen.get("scope"), chosen.get("mode", "global"))
        if (entry["target_fmr"], entry["scope"], mode) == chosen_key:
            flags += " --operating-point"
        commands.append(f"{embedder}edge calibrate {data} --target-fmr {entry['target_fmr']:g}{flags}")
    out = report_path.rsplit("/", 1)[0] if "/" in report_path else "."
    options = f" --threshold {report['threshold']['value']}" if report["threshold"]["source"] == "--threshold" else ""
    if (watch := report.get("watchlists")) is not None:
        sizes = " ".join(str(entry["size"]) for entry in watch["sizes"])
        options += f" --watchlists {sizes} --lists {watch['lists']} --photos {watch['photos']} --seed {watch['seed']}"
    commands.append(f"{embedder}edge eval {data} --out {out}{options}")
    card = f"python scripts/make_model_card.py --report {report_path} --out {card_path}"
    if split is not None:
        lists = split.content["lists"]
        commands.append(f"{embedder}python scripts/check_watchlists_split.py --lists {lists} --out {split.path}")
        card += f" --out-of-sample {split.path}"
    if embedders is not None:
        commands.append("# SFace built first: see EMBEDDER_COMPARISON.md, then")
        commands.append(f"python scripts/compare_embedders.py --summary {embedders.path}")
        card += f" --embedders {embedders.path}"
    commands.append(card)
    return commands
