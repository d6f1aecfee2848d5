"""One measured configuration in a process of its own, so its peak RSS is its own.

    python -m edge.bench.worker SPEC.json RESULT.json

SPEC holds `kind` ("loop" or "reference"), `settings` (config file and flags, for "loop"),
and the configuration; RESULT gets the figures, `peak_rss_mb` (the loop's: after its first pass
over the clip, which is what a device run does) and `process_peak_rss_mb` (at the end).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from edge.bench.timer import peak_rss_mb


def measure(spec: dict) -> dict:
    load = os.getloadavg()[0]  # other work on the machine skews every figure: keep the evidence
    if spec["kind"] == "loop":
        from edge.bench.loop_run import LoopSpec, run_loop
        from edge.cli import build_parser
        from edge.config import load_settings

        build_parser()  # imports every command module, as `edge run` does: its memory counts too

        config = spec["settings"]["config_file"]
        settings = load_settings(Path(config) if config else None, None, **spec["settings"]["flags"])
        result = run_loop(settings, LoopSpec(**spec["loop"]))
    else:
        from edge.bench.reference_run import run_reference

        result = run_reference(**spec["reference"])
    result["load_average_1m"] = round(load, 2)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result["process_peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec_path, result_path = (Path(a) for a in argv)
    result = measure(json.loads(spec_path.read_text()))
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
