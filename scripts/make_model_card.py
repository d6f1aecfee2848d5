#!/usr/bin/env python3
"""Write models/MODEL_CARD.md from an `edge eval` report.

    python scripts/make_model_card.py --report models/eval/report.json
    python scripts/make_model_card.py --report models/eval-fp16/report.json --out models/MODEL_CARD_fp16.md
    python scripts/make_model_card.py --report my-eval/report.json --out my-models/MODEL_CARD.md
    # the default's card, with scripts/check_watchlists_split.py's lists and compare_embedders.py --summary
    python scripts/make_model_card.py --report models/eval/report.json \
        --out-of-sample models/eval/watchlists_split.json --embedders models/eval/embedders.json

The card cites its inputs by path (relative to the repository when inside it) and sha256, and
is a pure function of them: the same files always give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.central.modelcard.card import Cited, render  # noqa: E402
from edge.vision.runtime import file_sha256  # noqa: E402


def cited_path(path: Path) -> str:
    """A path as the card states it: relative to the repository when inside it."""
    resolved = path.resolve()
    return resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(path)


def read_json(path: Path) -> dict:
    """An input's content, or one line saying why it cannot be read."""
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(content, dict):
        raise SystemExit(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


def cited(path: Path | None) -> Cited | None:
    """A JSON input of the card, as the card cites it."""
    return None if path is None else Cited(read_json(path), cited_path(path), file_sha256(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, required=True, help="report.json written by `edge eval`")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "MODEL_CARD.md", help="card to write")
    parser.add_argument(
        "--out-of-sample", type=Path, help="watchlists_split.json written by scripts/check_watchlists_split.py --out"
    )
    parser.add_argument("--embedders", type=Path, help="the summary written by scripts/compare_embedders.py --summary")
    args = parser.parse_args(argv)
    for given in (args.report, args.out_of_sample, args.embedders):
        if given is not None and not given.is_file():
            raise SystemExit(f"not found: {given}")
    report = read_json(args.report)
    split, embedders = (cited(path) for path in (args.out_of_sample, args.embedders))
    try:
        card = render(report, cited_path(args.report), file_sha256(args.report), cited_path(args.out), split, embedders)
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise SystemExit(
            f"an input is not what its option expects ({type(e).__name__}: {e}): --report takes `edge eval`'s "
            "report.json, --out-of-sample check_watchlists_split.py --out, --embedders compare_embedders.py --summary"
        ) from None
    args.out.write_text(card)
    print(f"wrote {args.out} from {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
