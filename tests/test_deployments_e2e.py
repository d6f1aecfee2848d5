"""A deployment delivered to a real device: `edge deploy deliver` seals the watchlist's gallery to
the device and signs it; the running device reports it in use; after `edge deploy end`, delivered
again, it reports an empty gallery."""

from __future__ import annotations

import json
from pathlib import Path

from support_wait import wait_until
from test_deployments import photos_of  # noqa: F401 (fixture)
from test_device_e2e import gallery, slideshow, slideshow_jpegs  # noqa: F401 (fixtures)
from test_gallery_live import passers_by  # noqa: F401
from test_remote_gallery import DEVICE, SITE, camera, central_port, device, fleet, make_device  # noqa: F401

from edge.cli import main


def create_deployment(fleet, base: list[str]) -> None:  # noqa: F811
    """`market-day` on the one device, through the CLI."""
    assert main(["deploy", "create", "market-day", "--device", f"{SITE}/{DEVICE}", "--start", "2026-01-01T00:00Z",
                 "--end", "2036-01-01T00:00Z", "--purpose", "a test", "--authorised-by", "the suite",
                 "--fleet", str(fleet.root), *base]) == 0  # fmt: skip


def add_person(fleet, base: list[str], name: str, photos: list[Path]) -> None:  # noqa: F811
    args = ["--name", name, "--reason", "r", "--by", "ada", "--fleet", str(fleet.root)]
    assert main(["deploy", "person", "add", "market-day", *map(str, photos), *args, *base]) == 0


def test_a_deployment_reaches_its_device_and_is_withdrawn_at_its_end(
    device,  # noqa: F811
    fleet,  # noqa: F811
    photos_of,  # noqa: F811
    db_url,
    subscriber_factory,
    capsys,
):
    sub = subscriber_factory(device.broker.port, [f"edge/{SITE}/{DEVICE}/stats"])
    device.start()
    # online and subscribed: here the answer is awaited (the next test delivers to a device offline)
    assert wait_until(lambda: sub.messages(f"edge/{SITE}/{DEVICE}/stats"), timeout=90), device.log.read_text()[-3000:]
    base = ["--db", db_url]
    create_deployment(fleet, base)
    listed = [name for name, found in sorted(photos_of.items()) if len(found) >= 2][:3]
    for name in listed:
        add_person(fleet, base, name, photos_of[name][:2])
    capsys.readouterr()
    deliver = ["deploy", "deliver", "market-day", "--fleet", str(fleet.root), "--broker", device.broker.url]
    assert main([*deliver, "--wait", "90", *base]) == 0, device.log.read_text()[-3000:]
    (report,) = json.loads(capsys.readouterr().out)
    assert report["device"] == f"{SITE}/{DEVICE}" and report["identities"] == 3
    assert report["device_gallery_version"] == report["gallery_version"] and report["gallery_identities"] == 3
    assert main(["deploy", "end", "market-day", *base]) == 0
    capsys.readouterr()
    assert main([*deliver, "--wait", "90", *base]) == 0
    (withdrawn,) = json.loads(capsys.readouterr().out)
    assert withdrawn["identities"] == 0 and withdrawn["gallery_identities"] == 0
    assert withdrawn["device_gallery_version"] == withdrawn["gallery_version"] != report["gallery_version"]


def test_a_device_offline_at_delivery_gets_the_gallery_when_it_comes_back_and_drops_the_copy_after(
    device,  # noqa: F811
    fleet,  # noqa: F811
    photos_of,  # noqa: F811
    db_url,
    subscriber_factory,
    capsys,
):
    base = ["--db", db_url]
    create_deployment(fleet, base)
    name = next(n for n, found in sorted(photos_of.items()) if len(found) >= 2)
    add_person(fleet, base, name, photos_of[name][:2])
    capsys.readouterr()
    deliver = ["deploy", "deliver", "market-day", "--fleet", str(fleet.root), "--broker", device.broker.url]
    assert main([*deliver, *base]) == 0
    (sent,) = json.loads(capsys.readouterr().out)  # the device is not running: nobody receives it now
    status_topic = f"edge/{SITE}/{DEVICE}/status"
    sub = subscriber_factory(device.broker.port, [status_topic])

    def in_use() -> bool:
        last = [json.loads(m.payload) for m in sub.messages(status_topic)][-1:]
        return (
            bool(last)
            and last[0]["details"].get("gallery_push_version") == sent["push_version"]
            and (last[0]["versions"]["gallery_version"] == sent["gallery_version"])
        )

    device.start()
    assert wait_until(in_use, timeout=90), device.log.read_text()[-3000:]
    device.stop()
    device.start()  # the broker hands the retained copy over again: dropped, not refused
    copy = f"gallery push {sent['push_version']} is the one in force, received again"
    assert wait_until(lambda: copy in device.log.read_text(), timeout=90), device.log.read_text()[-3000:]
    assert wait_until(in_use, timeout=30)
    assert [e["outcome"] for e in device.audit()] == ["accepted"]
    assert all(json.loads(m.payload)["details"].get("gallery_push_error") is None for m in sub.messages(status_topic))
