"""`edge deploy create|list|person add|person remove|end|deliver|feedback`: deployments and their watchlists.

A deployment states its devices, period, purpose and who authorised it; its watchlist holds
people with a reason, who added them and an expiry, and their reference photos sealed with the
fleet's photo key (`edge.central.deployments`). Ending it withdraws the list. `feedback` shows,
applies and reverts negative feedback on an alert adjudicated false (`edge.central.deployments.feedback`).
"""

from __future__ import annotations

import argparse
import getpass
from datetime import datetime
from pathlib import Path

from edge.commands.common import CommandError, print_json, settings_from

DB_HELP = "the trial database: sqlite:///FILE (or a file path) or postgresql://USER@HOST:PORT/DB"


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: use e.g. 2026-12-05T08:00Z") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: use e.g. 2026-12-05T08:00Z (UTC)")
    return at


def _open(args: argparse.Namespace):
    from edge.central.deployments.schema import migrate
    from edge.central.trial.store import TrialStore  # the `central` extra: not on a device

    return TrialStore.open(args.db, also=(migrate,))


def run_create(args: argparse.Namespace) -> int:
    from edge.central.deployments.watchlist import DeploymentSpec, create
    from edge.central.fleet.folder import FleetDir

    spec = DeploymentSpec(
        args.name,
        tuple(args.device),
        args.start,
        args.end,
        args.purpose,
        args.authorised_by,
        args.by or getpass.getuser(),
        args.retention_days,
        args.target_fmr,
    )
    with _open(args) as store:
        create(store.engine, spec, FleetDir(args.fleet).require())
    period = f"{args.start:%Y-%m-%d %H:%M} to {args.end:%Y-%m-%d %H:%M} UTC"
    print(f"deployment {args.name}: {len(spec.devices)} device(s), {period}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from edge.central.deployments.watchlist import summary

    with _open(args) as store:
        print_json(summary(store.engine))
    return 0


def run_person_add(args: argparse.Namespace) -> int:
    from edge.central.deployments.vault import PhotoVault
    from edge.central.deployments.watchlist import add_person
    from edge.central.fleet.folder import FleetDir
    from edge.device.parts import stills_vision
    from edge.enrollment import Person

    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    person = Person(args.name, tuple(args.photos), args.id)
    vault = PhotoVault.of(FleetDir(args.fleet).require(), create=True)
    with _open(args) as store:
        added = add_person(
            store.engine, vault, stills_vision(settings), args.deployment, person, args.reason, args.by, args.expires
        )
    print_json(
        {
            "deployment": args.deployment,
            "identity_id": added.identity_id,
            "photos_accepted": added.accepted,
            "photos_refused": [{"photo": p, "reason": why} for p, why in added.refused],
        }
    )
    if not added.accepted:
        raise CommandError(f"no photo of {args.name} passed the quality gate; nobody was added")
    return 0


def run_person_remove(args: argparse.Namespace) -> int:
    from edge.central.deployments.watchlist import remove_person

    with _open(args) as store:
        remove_person(store.engine, args.deployment, args.id)
    print(f"{args.id} removed from {args.deployment}: their photos and templates are deleted")
    return 0


def run_deliver(args: argparse.Namespace) -> int:
    from edge.central.deployments.delivery import deliver
    from edge.central.deployments.vault import PhotoVault
    from edge.central.fleet.folder import FleetDir

    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    fleet = FleetDir(args.fleet).require()
    with _open(args) as store:
        vault = PhotoVault.of(fleet)
        by = f"cli:{getpass.getuser()}"
        print_json(deliver(store.engine, vault, args.name, fleet, args.broker, settings, args.wait, by=by))
    return 0


def run_end(args: argparse.Namespace) -> int:
    from edge.central.deployments.watchlist import end, get

    with _open(args) as store:
        end(store.engine, args.name)
        kept = get(store.engine, args.name).retention_days
    photos = "its photos are deleted" if kept == 0 else f"its photos are kept {kept} more day(s), as it states"
    print(f"deployment {args.name} ended: its watchlist is withdrawn ({photos})")
    print(
        "a console running with --fleet takes it off the devices at its next delivery round; "
        f"without one: edge deploy deliver {args.name} --fleet DIR --broker URL --db URL"
    )
    return 0


def _feedback_parts(args: argparse.Namespace):
    """The photo vault and the configured embedder's figures that feedback's proposals come from."""
    from edge.central.deployments.feedback import Pricing
    from edge.central.deployments.vault import PhotoVault
    from edge.central.fleet.folder import FleetDir

    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    return PhotoVault.of(FleetDir(args.fleet).require()), Pricing.of(settings)


def _redeliver(deployment: str) -> None:
    print(
        f"a new gallery version must reach {deployment}'s devices: edge deploy deliver {deployment} "
        "--fleet DIR --broker URL --db URL (the console delivers it by itself)"
    )


def run_feedback_show(args: argparse.Namespace) -> int:
    from edge.central.deployments.feedback import propose

    vault, pricing = _feedback_parts(args)
    with _open(args) as store:
        print_json(propose(store.engine, vault, pricing, args.event_id).as_json())
    return 0


def run_feedback_apply(args: argparse.Namespace) -> int:
    from edge.central.deployments.feedback import apply, change

    vault, pricing = _feedback_parts(args)
    with _open(args) as store:
        made = change(store.engine, apply(store.engine, vault, pricing, args.event_id, args.kind, args.by))
    print_json(made)
    _redeliver(made["deployment"])
    return 0


def run_feedback_revert(args: argparse.Namespace) -> int:
    from edge.central.deployments.feedback import revert

    with _open(args) as store:
        deployment = revert(store.engine, args.adjustment_id, args.by)
    print(f"adjustment {args.adjustment_id} reverted")
    _redeliver(deployment)
    return 0


def run_feedback_list(args: argparse.Namespace) -> int:
    from edge.central.deployments.feedback import changes
    from edge.central.deployments.watchlist import get

    with _open(args) as store:
        get(store.engine, args.deployment)  # an unknown name is one line, not an empty list
        print_json(changes(store.engine, args.deployment))
    return 0


def _add_feedback(verbs) -> list[argparse.ArgumentParser]:
    f = verbs.add_parser("feedback", help="negative feedback: tighten or quarantine the template of a false alert")
    actions = f.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="what tightening the alert's template would cost and save")
    show.add_argument("event_id")
    show.set_defaults(func=run_feedback_show)
    made = [show]
    for kind, text in (
        ("tighten", "tighten the alert's template to just below its distance"),
        ("quarantine", "leave the alert's template out of the gallery (the person keeps the others)"),
    ):
        a = actions.add_parser(kind, help=text)
        a.add_argument("event_id")
        a.add_argument("--by", required=True, help="who makes the change (audited)")
        a.set_defaults(func=run_feedback_apply, kind=kind)
        made.append(a)
    for p in made:
        p.add_argument("--fleet", type=Path, required=True, help="the fleet folder (its photos.key opens templates)")
        p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    r = actions.add_parser("revert", help="take a change back (the template is as before it)")
    r.add_argument("adjustment_id", type=int)
    r.add_argument("--by", required=True, help="who reverts it (audited)")
    r.set_defaults(func=run_feedback_revert)
    ls = actions.add_parser("list", help="every change of a deployment, active or reverted")
    ls.add_argument("deployment")
    ls.set_defaults(func=run_feedback_list)
    return [*made, r, ls]


def add_parser(sub) -> None:
    p = sub.add_parser("deploy", help="deployments and their watchlists (photos sealed, withdrawn at the end)")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("create", help="a deployment: devices, period, purpose, who authorised it")
    c.add_argument("name")
    c.add_argument("--device", action="append", required=True, metavar="SITE/DEVICE", help="a device (repeat)")
    c.add_argument("--start", type=_time, required=True, help="start, ISO 8601 with a zone (2026-12-05T08:00Z)")
    c.add_argument("--end", type=_time, required=True, help="end, ISO 8601 with a zone")
    c.add_argument("--purpose", required=True, help="why the deployment exists (stated in its report)")
    c.add_argument("--authorised-by", required=True, help="who authorised it (name and role)")
    c.add_argument("--retention-days", type=int, default=0, help="days its records are kept after its end (default 0)")
    c.add_argument("--target-fmr", type=float, help="operating point (default: the embedder's shipped one)")
    c.add_argument("--by", help="who creates it (default: this user)")
    c.add_argument("--fleet", type=Path, required=True, help="the fleet folder (edge fleet init)")
    c.set_defaults(func=run_create)
    ls = verbs.add_parser("list", help="every deployment, its period, state and watchlist size")
    ls.set_defaults(func=run_list)
    person = verbs.add_parser("person", help="add a person to a watchlist, or remove one")
    actions = person.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a person with reference photos (each passes the quality gate)")
    add.add_argument("deployment")
    add.add_argument("photos", type=Path, nargs="+", help="photos with exactly one face each")
    add.add_argument("--name", required=True, help="the person's name, as operators will see it")
    add.add_argument("--id", help="identity id (default: made from the name)")
    add.add_argument("--reason", required=True, help="why the person is listed")
    add.add_argument("--by", required=True, help="who adds them")
    add.add_argument("--expires", type=_time, help="end of the listing (default, and at most: the deployment's end)")
    add.add_argument("--fleet", type=Path, required=True, help="the fleet folder (its photos.key seals the photos)")
    add.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    add.set_defaults(func=run_person_add)
    rm = actions.add_parser("remove", help="take a person off the list (their photos are deleted)")
    rm.add_argument("deployment")
    rm.add_argument("id", help="identity id")
    rm.set_defaults(func=run_person_remove)
    e = verbs.add_parser("end", help="end a deployment now: its watchlist is withdrawn (then deliver)")
    e.add_argument("name")
    e.set_defaults(func=run_end)
    d = verbs.add_parser("deliver", help="push the watchlist as it stands (nobody once ended) to its devices")
    d.add_argument("name")
    d.add_argument("--fleet", type=Path, required=True, help="the fleet folder (keys that seal, sign and open)")
    d.add_argument("--broker", required=True, help="mqtts://HOST:PORT (with the central certificate) or mqtt://")
    d.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for each device's answer")
    d.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    d.set_defaults(func=run_deliver)
    for parser in (c, ls, add, rm, e, d, *_add_feedback(verbs)):
        parser.add_argument("--db", required=True, help=DB_HELP)
