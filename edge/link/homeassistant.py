"""Home Assistant MQTT discovery: the configs that make a device appear in Home Assistant.

Home Assistant's MQTT integration reads retained configs on
`<prefix>/<component>/<node_id>/<object_id>/config` and creates entities that read the device's
own topics: sensors for scans, matches and fps (from `stats`), one for the status (from
`status`), and an event entity fed by `match`. Nothing new is published for them: the templates
pick fields out of the JSON the device sends anyway.

The node id is the device's MQTT client id, `edge-<site>-<device_id>`, so that a broker's ACL can
let each device write only its own discovery topics (`pattern write <prefix>/+/%c/+/config`).
Home Assistant accepts only letters, digits, `_` and `-` there: a site or device id with a `.`
cannot be announced.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge.link.payloads import Topics

_DISCOVERY_ID = re.compile(r"^[A-Za-z0-9_-]+$")

# Available unless the status says offline: 'degraded' still counts, since it still reports.
_AVAILABLE = "{{ 'offline' if value_json.state == 'offline' else 'online' }}"
_MATCH_EVENT = (
    "{{ {'event_type': 'match', 'identity_id': value_json.identity_id, 'score': value_json.score,"
    " 'gallery_version': value_json.gallery_version} | tojson }}"
)


def node_id(topics: Topics) -> str:
    """The device's node id in Home Assistant: its MQTT client id (MqttLink's default)."""
    return f"edge-{topics.site}-{topics.device_id}"


def discovery_configs(prefix: str, topics: Topics, sw_version: str) -> dict[str, str]:
    """{discovery topic: retained JSON config} for one device. Raises ValueError when the
    device's ids cannot form a Home Assistant node id."""
    node = node_id(topics)
    if not _DISCOVERY_ID.match(node):
        raise ValueError(
            f"Home Assistant discovery needs site and device ids of letters, digits, '_' and '-' only, "
            f"not {topics.site}/{topics.device_id}"
        )
    device = {
        "identifiers": [node],
        "name": f"edge {topics.site}/{topics.device_id}",
        "model": "edge",
        "manufacturer": "edge",
        "sw_version": sw_version,
    }
    availability = [{"topic": topics.status, "value_template": _AVAILABLE}]

    def stats_sensor(field: str, name: str, unit: str | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": name,
            "state_topic": topics.stats,
            "value_template": f"{{{{ value_json.{field} }}}}",
            "state_class": "measurement",
            "availability": availability,
        }
        if unit is not None:
            config["unit_of_measurement"] = unit
        return config

    entities: dict[tuple[str, str], dict[str, Any]] = {
        ("sensor", "scans"): stats_sensor("scans", "Scans per window"),
        ("sensor", "matches"): stats_sensor("matches", "Matches per window"),
        ("sensor", "fps"): stats_sensor("fps", "Frames per second", "fps"),
        ("sensor", "status"): {
            "name": "Status",
            "state_topic": topics.status,
            "value_template": "{{ value_json.state }}",
            "device_class": "enum",
            "options": ["online", "degraded", "offline"],
        },
        ("event", "match"): {
            "name": "Match",
            "state_topic": topics.match,
            "value_template": _MATCH_EVENT,
            "event_types": ["match"],
            "availability": availability,
        },
    }
    origin = {"name": "edge", "sw_version": sw_version}
    return {
        f"{prefix}/{component}/{node}/{object_id}/config": json.dumps(
            {**config, "unique_id": f"{node}_{object_id}", "device": device, "origin": origin, "qos": 1}
        )
        for (component, object_id), config in entities.items()
    }
