"""A pytest plugin: in CI a skipped test fails.

.ci/run sets NO_SKIPPED_TESTS=1: there every service and the data are installed and checked
out, so a skip means a test silently stopped running; it fails instead, with the skip's reason.
Outside CI, tests still skip with the reason for a contributor without the data or a service.
(Not an EDGE_ variable: the settings refuse unknown EDGE_ names.)
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("NO_SKIPPED_TESTS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (NO_SKIPPED_TESTS=1), where nothing may be missing: {reason}"
