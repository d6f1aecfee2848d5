"""The one error of card writing: the operator gave something that cannot become a card."""

from __future__ import annotations

from edge.errors import OperatorError


class CardError(OperatorError, ValueError):
    """A base image, card, bundle or tool that cannot make a bootable card; nothing was written."""
