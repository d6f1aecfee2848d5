"""The trial page: the field-trial report (`edge trial report`'s, one implementation) for a chosen
period, site and device, limited to the sites the user may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from edge.central.trial.report import build_report
from edge.central.trial.report.data import Selection
from edge.central.trial.report.html import to_html
from edge.central.trial.report.load import load
from edge.central.trial.report.text import to_csv, to_json, to_markdown
from edge.central.trial.store import TrialStore
from edge.console.users import User
from edge.errors import OperatorError

FORMATS = {
    "html": ("text/html; charset=utf-8", to_html),
    "md": ("text/markdown; charset=utf-8", to_markdown),
    "csv": ("text/csv; charset=utf-8", to_csv),
    "json": ("application/json", to_json),
}


class ChoiceError(OperatorError):
    """The period, site or device asked for cannot be reported (a bad day, a site not the user's)."""


@dataclass(frozen=True)
class Choice:
    """What the page's form asks for, as text ("" for any)."""

    first_day: str = ""
    last_day: str = ""
    site: str = ""
    device: str = ""

    def selection(self, user: User) -> Selection:
        """The report's selection; a restricted user reports one of their sites (the only one by default)."""
        first, last = _day(self.first_day, "from"), _day(self.last_day, "to")
        if first and last and first > last:
            raise ChoiceError(f"from {first} is after to {last}")
        site = self.site or None
        restricted = user.role != "admin" and bool(user.sites)
        if restricted and site is None and len(user.sites) == 1:
            site = user.sites[0]
        if restricted and (site is None or site not in user.sites):
            raise ChoiceError(f"choose one of your sites: {', '.join(user.sites)}")
        return Selection(first, last, site, self.device or None)

    def query(self) -> str:
        """The choice as a query string, for the download links."""
        return urlencode({"from": self.first_day, "to": self.last_day, "site": self.site, "device": self.device})


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ChoiceError(f"{name} {text!r} is not a day: use YYYY-MM-DD (UTC)") from None


def report(store: TrialStore, user: User, choice: Choice) -> dict[str, Any]:
    selection = choice.selection(user)
    return build_report(load(store, selection), selection)
