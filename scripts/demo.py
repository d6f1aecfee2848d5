#!/usr/bin/env python3
"""The demo: a broker, a gallery enrolled from photos, the loop over a video, and the metadata a
subscriber receives, printed as it arrives.

    python scripts/demo.py                 # ../shared/data ($EDGE_TEST_DATA) when present, else a sample
    python scripts/demo.py --sample        # force the sample (no ../shared needed)

The data folder is $EDGE_TEST_DATA when set (as for the tests), else ../shared/data. With it:
five people of the LFW slideshow are enrolled from other photos of them (identities.csv) and the
loop runs over videos/lfw_slideshow.mp4 (24 photos of 12 people, one second each): expect one
match event per photo of an enrolled person, none for the others.
Without it: Grace Hopper's public-domain portrait (shipped in matplotlib's sample data) is
enrolled, and a 6-second clip is made from that portrait (moving, resized, mirrored, with gaps):
expect one match event per appearance.

Broker: Mosquitto when installed ($EDGE_MOSQUITTO, else on PATH), else amqtt (pip install
'edge[demo]') speaking MQTT 3.1.1. Without --workdir everything (the gallery's templates too) is
written to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from local_broker import MOSQUITTO, Broker, free_port  # scripts/local_broker.py, beside this file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.clips import DATA_DIR, SLIDESHOW, sample_clip, slideshow_people  # noqa: E402
from edge.cli import main as edge_cli  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.device.app import run_device  # noqa: E402
from edge.device.parts import operating_point  # noqa: E402
from edge.vision import load_manifest  # noqa: E402

ENROLLED = ["marco_antonio_barrera", "angela_bassett", "li_peng", "george_w_bush", "queen_rania"]


def shared_inputs() -> tuple[Path, list[tuple[str, list[Path]]]]:
    """The slideshow and, per enrolled person, their photos that the slideshow does not show."""
    people = [(p.name, list(p.photos)) for p in slideshow_people(DATA_DIR) if p.name in ENROLLED]
    return DATA_DIR / SLIDESHOW, people


def sample_inputs(work: Path) -> tuple[Path, list[tuple[str, list[Path]]]]:
    """Grace Hopper's portrait from matplotlib, and a clip of two appearances made from it."""
    try:
        clip = sample_clip(work)
    except FileNotFoundError:
        raise SystemExit("the sample needs matplotlib: pip install 'edge[demo]'") from None
    return clip.path, [("grace_hopper", list(clip.people[0].photos))]


class EmbeddedBroker:
    """amqtt in a thread, for machines without Mosquitto (MQTT 3.1.1 only)."""

    def __init__(self) -> None:
        try:
            from amqtt.broker import Broker as AmqttBroker
        except ImportError:
            raise SystemExit(
                "no Mosquitto and no amqtt: apt-get install mosquitto, or pip install 'edge[demo]'"
            ) from None
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = AmqttBroker(config, loop=self._loop)
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._broker.start())
            started.set()
            self._loop.run_forever()

        threading.Thread(target=serve, name="amqtt", daemon=True).start()
        started.wait(10)

    def stop(self) -> None:
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # its shutdown logs cancelled tasks
        asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def start_broker(work: Path) -> tuple[object, str]:
    """(broker, MQTT protocol to use): Mosquitto speaks MQTT 5, amqtt only 3.1.1."""
    if shutil.which(MOSQUITTO) or Path(MOSQUITTO).exists():
        broker = Broker(work)
        broker.start()
        print(f"== broker: Mosquitto on {broker.url}")
        return broker, "5"
    broker = EmbeddedBroker()
    print(f"== broker: amqtt (embedded, Mosquitto not installed) on {broker.url}")
    return broker, "3.1.1"


def print_messages(port: int) -> paho.Client:
    """A subscriber that prints every message under edge/# as it arrives."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="demo-watch")

    def on_message(client, userdata, message) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        print(f"   <- {message.topic}: {kind} {json.dumps(json.loads(message.payload))}", flush=True)

    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe("edge/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit(f"the demo subscriber could not subscribe on port {port}")
    time.sleep(0.5)  # amqtt acknowledges a subscription a moment before it takes effect
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", action="store_true", help="use the sample portrait even if ../shared is present")
    parser.add_argument("--workdir", type=Path, help="keep the gallery, outbox and clip here (default: a temp folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return demo(args.workdir, sample=args.sample)
    with tempfile.TemporaryDirectory(prefix="edge-demo-") as work:
        return demo(Path(work), sample=args.sample)


def demo(work: Path, *, sample: bool) -> int:
    """Enroll, start a broker and a subscriber, run the loop; everything written goes under `work`."""
    use_shared = (DATA_DIR / "MANIFEST.md").is_file() and not sample
    print(f"== data: {DATA_DIR}" if use_shared else "== data: the sample portrait")
    video, people = shared_inputs() if use_shared else sample_inputs(work)
    gallery = work / "gallery.sqlite"
    gallery.unlink(missing_ok=True)

    print(f"== enrolling {len(people)} people into {gallery}")
    for identity, photos in people:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = edge_cli(
                ["enroll", "--gallery", str(gallery), "--name", identity, "--id", identity, *map(str, photos)]
            )
        result = json.loads(out.getvalue())
        print(
            f"   {identity}: {len(result['enrolled'])} photo(s) enrolled, "
            f"{len(result['rejected'])} rejected {[r['reason'] for r in result['rejected']]}"
        )
        if code != 0:
            return 1

    broker, protocol = start_broker(work)
    watcher = print_messages(broker.port)
    try:
        settings = load_settings(
            device={"device_id": "demo-cam", "site": "demo", "state_dir": work / "state"},
            camera={"source": f"file:{video}"},
            models={"detector": "blazeface_short_range"},
            match={"gallery": gallery},
            mqtt={"url": broker.url, "protocol": protocol},
            stats={"window_s": 5},
        )
        manifest = load_manifest(settings.models.models_dir)
        point = operating_point(settings, manifest.get(manifest.default_embedder))
        print(
            f"== running the loop over {video} at the shipped operating point ({point.origin}: knob "
            f"{point.threshold:g} x each template's scale); messages as the subscriber gets them:"
        )
        summary = run_device(settings, threading.Event())
    finally:
        time.sleep(0.5)  # let the subscriber print the last messages
        watcher.loop_stop()
        broker.stop()
    print(
        f"== done: {summary.frames} frames; totals {json.dumps(summary.totals)}; "
        f"{summary.outbox_pending} message(s) left in the outbox"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
