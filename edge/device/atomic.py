"""Moved to `edge.atomic` (the gallery writes atomically too, and must not import the device).

Kept, with the one name it still imports from here, for `edge.commands.fleet.gallery`: delete
this module once that imports `edge.atomic`.
"""

from edge.atomic import write_atomically

__all__ = ["write_atomically"]
