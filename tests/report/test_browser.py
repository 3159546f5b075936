"""The HTML report in a real browser with no network: every chart must render.

Uses Debian's ``chromium`` (installed here with apt-get when it is missing) in headless mode,
with every host name resolving nowhere and an unreachable proxy, so a chart that needed the
network would fail. ``--dump-dom`` after a virtual-time budget gives the DOM once scripts ran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kaudit_analytics import report as r
from tests.compliance.test_compliance import frame
from tests.report.test_report import SETTINGS, STUB_BUNDLE, WINDOW, scenario_rows

pytestmark = pytest.mark.browser

_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: What each chart draws: a chart that rendered has these Vega mark groups in its SVG.
_MARKS = {
    "status": ("mark-rect role-mark marks",),
    "findings": ("mark-rect role-mark layer_0_marks", "mark-rect role-mark layer_1_marks"),
    "timeline": ("mark-line role-mark", "mark-symbol role-mark"),
}


def _find() -> str | None:
    return next((path for name in _NAMES if (path := shutil.which(name))), None)


def _install() -> str:
    # Only as root and only through apt, as the project's set-up does; anything else skips.
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=900, check=False
        )
        if done.returncode:
            return f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}"
    return ""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find()
    if path is None:
        problem = _install()
        path = _find()
        if path is None:
            pytest.skip(f"chromium is not installed and could not be installed ({problem})")
    return path


def _dom(browser: str, page: Path, profile: Path) -> str:
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # No network: every name resolves nowhere, every connection goes to a dead proxy.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=socks5://127.0.0.1:9",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _charts(dom: str) -> dict[str, str]:
    """Each chart's element, from its opening tag to the next chart's."""
    pieces = re.split(r'(?=<div class="chart[ "])', dom)
    charts = {}
    for piece in pieces:
        name = re.match(r'<div class="chart[^"]*"[^>]*data-chart="(\w+)"', piece)
        if name:
            charts[name.group(1)] = piece
    return charts


def test_every_chart_renders_offline(chromium: str, tmp_path: Path) -> None:
    report = r.build_report(frame(scenario_rows()), WINDOW, settings=SETTINGS)
    page = tmp_path / "report.html"
    page.write_text(r.to_html(report), encoding="utf-8")
    charts = _charts(_dom(chromium, page, tmp_path / "profile"))
    assert set(charts) == set(r.charts(report)) == set(_MARKS)
    for name, element in charts.items():
        opening = element.split(">", 1)[0]
        assert 'data-rendered="true"' in opening, (name, opening)
        assert "data-error" not in opening, (name, opening)
        assert "<svg" in element, name
        for mark in _MARKS[name]:
            # The mark group must hold drawn shapes, not just exist.
            group = re.search(f'class="{mark}[^"]*"[^>]*>(.*?)</g>', element, flags=re.S)
            assert group is not None, (name, mark)
            assert "<path" in group.group(1), (name, mark)


def test_check_fails_without_the_inline_bundle(chromium: str, tmp_path: Path) -> None:
    # The same page without Vega: nothing may look rendered, or the test above proves nothing.
    report = r.build_report(frame(scenario_rows()), WINDOW, settings=SETTINGS)
    page = tmp_path / "broken.html"
    page.write_text(r.to_html(report, vega_bundle=STUB_BUNDLE), encoding="utf-8")
    charts = _charts(_dom(chromium, page, tmp_path / "profile"))
    assert charts
    assert not any(
        'data-rendered="true"' in element or "<svg" in element for element in charts.values()
    )
