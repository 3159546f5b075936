"""The Makefile a newcomer runs first: ``make demo`` says what it installs, ``make lab`` starts.

The install recipe runs for real, with a stand-in for Python that records what it is asked
to do, so these tests take a second and download nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

#: A stand-in for ``python3``: it makes a venv whose ``bin/python`` is itself, and answers
#: ``pip`` by printing what it was asked, so the order of messages and steps is visible.
FAKE_PYTHON = """#!{python}
import os, shutil, sys
args = sys.argv[1:]
version = os.environ.get("FAKE_VERSION", "3.12.1")
if args == ["--version"]:
    print("Python " + version)
elif args[:1] == ["-c"]:
    sys.exit(tuple(map(int, version.split(".")[:2])) < (3, 11))
elif args[:2] == ["-m", "venv"]:
    os.makedirs(os.path.join(args[2], "bin"))
    shutil.copy(__file__, os.path.join(args[2], "bin", "python"))
elif args[:2] == ["-m", "pip"]:
    print("FAKE-PIP " + " ".join(args[2:]), flush=True)
else:
    sys.exit("unexpected call: " + " ".join(args))
"""


def fake_python(folder: Path) -> Path:
    path = folder / "python3"
    path.write_text(FAKE_PYTHON.format(python=sys.executable), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_first_install_says_what_it_does(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = make(f"PYTHON={fake_python(tmp_path)}", f"VENV={venv}", f"{venv}/.installed")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    said = [line for line in lines if line.startswith("==> ")]
    assert said[0] == "==> Creating the virtualenv " + f"{venv} with Python 3.12.1"
    assert said[-1] == f"==> {venv} is ready"
    announce = next(i for i, line in enumerate(lines) if "Installing kaudit-analytics" in line)
    install = next(
        i for i, line in enumerate(lines) if line.startswith("FAKE-PIP install") and "-e" in line
    )
    assert announce < install
    assert "minutes" in lines[announce] + lines[announce + 1]
    # pip itself shows what it fetches: the long step is not run quietly.
    assert "--quiet" not in lines[install]
    assert (venv / ".installed").exists()


def test_an_old_python_is_refused_in_one_sentence(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = make(
        f"PYTHON={fake_python(tmp_path)}",
        f"VENV={venv}",
        f"{venv}/.installed",
        env={"FAKE_VERSION": "3.9.18"},
    )
    assert done.returncode != 0
    assert "kaudit-analytics needs Python 3.11 or newer" in done.stdout
    assert "is Python 3.9.18: run make PYTHON=python3.12" in done.stdout
    assert not venv.exists()


def _lab_command(env: dict[str, str] | None = None) -> str:
    done = make("-n", "lab", env=env)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "jupyter lab" in line]
    return line


def test_lab_allows_root_only_as_root(tmp_path: Path) -> None:
    # As whoever runs the tests (root in containers and CI) ...
    assert ("--allow-root" in _lab_command()) == (os.geteuid() == 0)
    # ... and as the other kind of user, through an `id` that says so.
    fake_id = tmp_path / "id"
    fake_id.write_text(f"#!/bin/sh\necho {1000 if os.geteuid() == 0 else 0}\n", encoding="utf-8")
    fake_id.chmod(0o755)
    other = _lab_command(env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert ("--allow-root" in other) == (os.geteuid() != 0)
    assert "--notebook-dir=notebooks" in other
