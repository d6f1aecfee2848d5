"""Hooking the first-boot script into cloud-init's `user-data` (Raspberry Pi OS from Trixie).

Imager writes the customisation (hostname, users and their SSH keys, Wi-Fi in `network-config`)
as cloud-config YAML. The hook is one `runcmd` entry, added as text so that every other key,
its order and its comments stay as they were; YAML is parsed only to check that the result
means the original plus that one command.
"""

from __future__ import annotations

import re
from typing import Any

from edge.central.fleet.card.errors import CardError

SCRIPT = "/boot/firmware/edge-firstboot.sh"
ENTRY = f"[sh, {SCRIPT}]"
COMMAND = ["sh", SCRIPT]
_RUNCMD = re.compile(r"^runcmd:[ \t]*(?P<rest>[^\r\n#]*?)[ \t]*(?P<comment>#[^\r\n]*)?(?=\r?$)", re.MULTILINE)


def hook_user_data(text: str, where: str) -> str:
    """`text` with the script in its `runcmd` list (made if it has none); as is if already there."""
    data = _load(text, where)
    runcmd = data.get("runcmd")
    if runcmd is not None and not isinstance(runcmd, list):
        raise CardError(f"{where}: its runcmd is not a list; add the command {ENTRY} by hand")
    if any(SCRIPT in str(command) for command in runcmd or []):
        return text
    hooked = _add(text, where)
    if _load(hooked, where) != {**data, "runcmd": [*(runcmd or []), COMMAND]}:
        raise CardError(f"{where}: could not add {ENTRY} to its runcmd as text; add it by hand")
    return hooked


def _load(text: str, where: str) -> dict[str, Any]:
    if not text.lstrip().startswith("#cloud-config"):
        raise CardError(f"{where}: not cloud-config (its first line is not #cloud-config); cannot hook it")
    # PyYAML (edge[central]) is imported here: `edge --help` imports every verb's module, a device's too.
    try:
        import yaml
    except ImportError:
        raise CardError("PyYAML is not installed: pip install 'edge[central]'") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CardError(f"{where}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError(f"{where}: cloud-config must be a mapping of keys")
    return data


def _add(text: str, where: str) -> str:
    newline = "\r\n" if "\r\n" in text else "\n"
    match = _RUNCMD.search(text)
    if match is None:
        body = text if text.endswith(("\n", "\r")) or not text else text + newline
        return f"{body}runcmd:{newline}  - {ENTRY}{newline}"
    rest = match.group("rest")
    if rest.startswith("[") and rest.endswith("]"):  # a flow list on one line
        inner = rest[1:-1].strip()
        value = f"[{inner}, {ENTRY}]" if inner else f"[{ENTRY}]"
        return text[: match.start("rest")] + value + text[match.end("rest") :]
    if rest:
        raise CardError(f"{where}: its runcmd is not a list written one item a line; add {ENTRY} by hand")
    return _add_to_block(text, match.end(), newline)


def _add_to_block(text: str, after: int, newline: str) -> str:
    """Insert an item after the last item of the block list that starts after offset `after`."""
    lines = text[after:].split(newline)
    head, block = lines[0], lines[1:]
    last, indent = -1, "  "
    for i, line in enumerate(block):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.startswith((" ", "\t")) or line.startswith("-"):
            if last == -1 and stripped.startswith("-"):
                indent = line[: len(line) - len(line.lstrip())]
            last = i
            continue
        break
    block.insert(last + 1, f"{indent}- {ENTRY}")
    return text[:after] + newline.join([head, *block])
