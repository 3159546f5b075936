"""JupyterLab in a real browser: explore.ipynb runs from the demo checkout and draws its charts.

What a newcomer does after ``make demo`` and ``make lab``: open ``explore.ipynb``, Run All,
look at the charts. The server is started with the Makefile's own ``lab`` command line (as
root too), Debian's ``chromium`` runs headless with every host name resolving nowhere (a
chart that needed a CDN would stay blank), and the test drives it through the DevTools
protocol: run every cell, wait for the kernel, then read the notebook as JupyterLab holds it
and the pixels each chart drew. A screenshot is left in the test's folder for people.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.report.test_browser import chromium  # noqa: F401 - the fixture: found or skipped
from tests.test_notebooks import VEGA_SCHEMA, demo_checkout, titles  # noqa: F401 - fixture

websocket = pytest.importorskip("websocket")  # websocket-client, a jupyter_server dependency

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "explore.ipynb"
TOKEN = "kaudit-browser-test"  # noqa: S105 - a loopback server that lives for one test
#: How long Run All may take on a loaded two-core machine.
RUN_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _lab_arguments() -> list[str]:
    """``make lab``'s own jupyter command line (its flags: the notebook folder, --allow-root)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "lab"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [line for line in done.stdout.splitlines() if "jupyter lab" in line]
    return shlex.split(line)[2:]  # after ".venv/bin/jupyter lab"


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):  # noqa: S310
            return
        time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer at {url} in {seconds:.0f} s")


@pytest.fixture
def lab(demo_checkout: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811 - the fixture
    """JupyterLab on the demo checkout's notebooks/, as ``make lab`` starts it."""
    port = _free_port()
    home = tmp_path / "jupyter"
    env = {
        **os.environ,
        # Nothing from the user's own Jupyter set-up, nothing kept between runs.
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    arguments = [
        arg.replace("--notebook-dir=notebooks", f"--notebook-dir={demo_checkout / 'notebooks'}")
        for arg in _lab_arguments()
    ]
    command = [
        sys.executable, "-m", "jupyterlab", *arguments,
        "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    # No "get notified about Jupyter news?" toast over the screenshot, no update check.
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8"
    )
    command.append(f"--LabApp.user_settings_dir={home / 'settings'}")
    log = (tmp_path / "jupyter.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", process, 180)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={TOKEN}&reset"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class DevTools:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, url: str) -> None:
        self._socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def wait(self, expression: str, seconds: float, what: str) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                value = self.evaluate(expression)
                if value:
                    return value
            time.sleep(1)
        pytest.fail(f"{what} did not happen in {seconds:.0f} s")

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[DevTools]:  # noqa: F811 - the fixture
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--window-size=1400,1000",
            # No network but this machine: every other name resolves nowhere.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        port = port_file.read_text(encoding="utf-8").split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
            pages = [t for t in json.load(answer) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


#: The notebook's panel, whether or not the headless window has focus.
_PANEL = (
    "Array.from(window.jupyterapp.shell.widgets('main'))"
    f".find(w => w.context && w.context.path === '{NOTEBOOK}')"
)

#: Per chart output: its titles, whether Vega drew it (an SVG or a canvas with ink), and
#: the notebook as JupyterLab holds it (what Save would write).
_CHARTS_JS = """
(() => {
  const panel = PANEL;
  const charts = [...document.querySelectorAll('.jp-RenderedVegaCommon5')].map(el => {
    const canvas = el.querySelector('canvas.marks');
    let ink = 0;
    if (canvas) {
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) ink++; }
    }
    const svg = el.querySelector('svg.marks');
    return {ink: ink, svg: svg ? svg.querySelectorAll('path').length : 0,
            error: el.innerText.includes('Error') ? el.innerText : ''};
  });
  return {charts: charts, notebook: panel.content.model.toJSON()};
})()
""".replace("PANEL", _PANEL)


def test_explore_runs_in_jupyterlab_and_draws_every_chart(
    lab: str, browser: DevTools, tmp_path: Path
) -> None:
    browser.call("Page.enable")
    browser.call("Page.navigate", url=lab)
    kernel = f"{_PANEL}.sessionContext.session.kernel"
    browser.wait(
        f"window.jupyterapp && {_PANEL} && {_PANEL}.sessionContext.session"
        f" && {kernel} && {kernel}.status === 'idle'",
        180,
        f"JupyterLab opening {NOTEBOOK} with an idle kernel",
    )
    browser.evaluate(f"window.jupyterapp.shell.activateById({_PANEL}.id)")
    browser.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    code = f"{_PANEL}.content.widgets.filter(c => c.model.type === 'code')"
    browser.wait(
        f"{kernel}.status === 'idle' && {code}.every(c => c.model.executionCount !== null)",
        RUN_TIMEOUT_S,
        "Run All",
    )
    expected = json.loads((REPO / "notebooks" / NOTEBOOK).read_text(encoding="utf-8"))
    wanted = expected["metadata"]["kaudit"]["expected_charts"]
    # Vega draws asynchronously: wait until every chart output has ink.
    browser.wait(
        f"(() => {{ const r = {_CHARTS_JS}; return r.charts.length > 0"
        " && r.charts.every(c => c.ink > 500 || c.svg > 0); })()",
        120,
        "every chart drawing",
    )
    state = browser.evaluate(_CHARTS_JS)
    for number in range(len(state["charts"])):  # one screenshot per chart, for people
        browser.evaluate(
            f"document.querySelectorAll('.jp-RenderedVegaCommon5')[{number}].scrollIntoView()"
        )
        time.sleep(1)
        shot = browser.call("Page.captureScreenshot", format="png")
        (tmp_path / f"explore-{number}.png").write_bytes(base64.b64decode(shot["data"]))

    notebook = state["notebook"]
    outputs = [output for cell in notebook["cells"] for output in cell.get("outputs", [])]
    errors = [output for output in outputs if output.get("output_type") == "error"]
    assert not errors, errors
    specs = [
        output["data"]["application/vnd.vega.v5+json"]
        for output in outputs
        if "application/vnd.vega.v5+json" in output.get("data", {})
    ]
    drawn = set().union(*(titles(spec) for spec in specs))
    assert [title for title in wanted if title not in drawn] == []
    assert all(spec["$schema"] == VEGA_SCHEMA for spec in specs)
    # Every chart output was drawn, with no error from Vega in its place.
    assert len(state["charts"]) == len(specs)
    for chart in state["charts"]:
        assert chart["ink"] > 500 or chart["svg"] > 0, chart
        assert not chart["error"], chart["error"]
    # JupyterLab adds a PNG of each drawn chart to its output: that is what Save stores.
    assert all(
        "image/png" in o["data"]
        for o in outputs
        if "application/vnd.vega.v5+json" in o.get("data", {})
    )
    saved = len(json.dumps(notebook))
    print(f"{NOTEBOOK} as JupyterLab would save it: {saved:,} bytes; see {tmp_path}/explore-*.png")
    assert saved < 2_000_000
    assert not re.search(r"<script", json.dumps(notebook))
