"""The host's side of scripts/check_boot_arm64.sh: what a booted device says over the fleet's broker.

Connects to the central tools' TLS listener with the fleet's central certificate (as `edge fleet
status` does), subscribes to one device's status, match and stats, and appends one line per message
to a file until killed:  <unix time> <topic> <payload>
The shell script waits on that file (a retained `online` status, then a match event).

    python scripts/boot_arm64_watch.py --port PORT --fleet FLEET --device SITE/ID --out EVENTS
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the central tools' listener on 127.0.0.1")
    parser.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    parser.add_argument("--device", required=True, help="SITE/DEVICE_ID")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    out = args.out.open("a", buffering=1)
    root = f"edge/{args.device}"
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"check-boot-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
    )
    client.tls_set(
        ca_certs=str(args.fleet / "ca.crt"),
        certfile=str(args.fleet / "central.crt"),
        keyfile=str(args.fleet / "central.key"),
    )

    def on_connect(c, userdata, flags, reason, properties) -> None:
        out.write(f"{time.time():.1f} connect {reason}\n")
        c.subscribe([(f"{root}/status", 1), (f"{root}/match", 1), (f"{root}/stats", 1)])

    def on_message(c, userdata, message) -> None:
        payload = message.payload.decode(errors="replace").replace("\n", " ")
        out.write(f"{time.time():.1f} {message.topic} {payload}\n")

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    main()
