"""Secrets out of everything printed, logged or published: one masking rule for every place.

A camera or broker URL may carry a password (`rtsp://user:secret@cam/stream`), also inside a
GStreamer pipeline (`location=rtsp://...`); a setting named like a password, secret, token or key
holds one itself. `edge config show`, the retained `config/reported` and log lines all pass
through here, so a secret shown in one place cannot slip out of another.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# scheme://user:PASSWORD@host -- the password runs to the last "@" before the path or a space
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^/\s]*@")
_SECRET_NAME = r"(?:password|passwd|secret|token|api_?key|private_?key|psk|credentials?)"
_QUERY_SECRET = re.compile(rf"([?&;]\w*{_SECRET_NAME}=)[^&;\s]*", re.IGNORECASE)
# a key naming the secret itself; `key_file` and friends name a path, which stays
_SECRET_KEY = re.compile(rf"(^|[_.-]){_SECRET_NAME}$|^key$", re.IGNORECASE)


def mask_uri(text: str) -> str:
    """Mask every password in URLs within `text`: `rtsp://u:s@h/x?token=t` -> `rtsp://u:***@h/x?token=***`."""
    return _QUERY_SECRET.sub(rf"\1{MASK}", _USERINFO.sub(rf"\1:{MASK}@", text))


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY.search(name))


def masked(value: Any, key: str = "") -> Any:
    """A copy of JSON-like `value` with secret keys' values replaced and URL passwords masked; None stays."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if is_secret_key(key):
        return MASK
    return mask_uri(value) if isinstance(value, str) else value
