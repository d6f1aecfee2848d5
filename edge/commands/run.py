"""`edge run`: the device loop, from a camera or a file to MQTT metadata."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from edge.commands.common import config_file, print_json, settings_from
from edge.config import Settings, load_settings
from edge.device.app import run_device

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    settings, flags, _ = settings_from(
        args,
        **{
            "camera.source": args.source,
            "match.gallery": args.gallery,
            "mqtt.url": args.broker,
            "device.device_id": args.device_id,
            "device.site": args.site,
            "device.state_dir": args.state_dir,
            "match.threshold": args.threshold,
            "match.target_fmr": args.target_fmr,
            "match.max_false_alerts_per_1000_scans": args.max_false_alerts,
            "models.detector": args.detector,
            "models.threads": args.threads,
            "models.models_dir": args.models,
            "stats.window_s": args.window,
        },
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    path = config_file(args)

    def reload(overlay: Path | None) -> Settings:
        return load_settings(path, overlay, **flags)

    summary = run_device(settings, stop, args.max_frames, reload=reload)
    print_json({"frames": summary.frames, "totals": summary.totals, "outbox_pending": summary.outbox_pending})
    return 0


def add_parser(sub) -> None:
    # Path flags stay text, as the environment's are: the settings check them (an empty one too).
    p = sub.add_parser("run", help="run the device loop (file sources stop at their end)")
    p.add_argument("--source", help="frame source URI (camera.source)")
    p.add_argument("--gallery", help="gallery file (match.gallery)")
    p.add_argument("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT (mqtt.url)")
    p.add_argument("--device-id", help="device.device_id")
    p.add_argument("--site", help="device.site")
    p.add_argument("--state-dir", help="outbox and counters folder (device.state_dir)")
    p.add_argument("--threshold", type=float, help="distance threshold (match.threshold; lower is stricter)")
    p.add_argument("--target-fmr", type=float, help="false match rate to hold (match.target_fmr; needs a calibration)")
    p.add_argument(
        "--max-false-alerts",
        type=float,
        help="refuse to start above this many expected false alerts per 1,000 scans "
        "(match.max_false_alerts_per_1000_scans)",
    )
    p.add_argument("--detector", help="detector model id (models.detector)")
    p.add_argument("--threads", type=int, help="inference threads (models.threads)")
    p.add_argument("--models", help="models folder (models.models_dir)")
    p.add_argument("--window", type=float, help="stats window seconds (stats.window_s)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.set_defaults(func=run)
