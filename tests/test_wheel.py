"""The built wheel works outside the repository: `kaudit --help` and loading the bundled sample."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.paths import REPO


@pytest.mark.slow
def test_wheel_installs_and_loads_the_bundled_sample(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("kaudit_analytics-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # The data each package reads at run time travels with it.
    for data in (
        "kaudit_analytics/py.typed",
        "kaudit_analytics/sample_logs/audit.log",
        "kaudit_analytics/policy/catalog/kubernetes-docs.yaml",
        "kaudit_analytics/report/templates/report.html.j2",
        "kaudit_analytics/sample/profiles/metadata.yaml",
        "kaudit_analytics/spark/log4j2.properties",
    ):
        assert data in names, f"{data} is missing from the wheel"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # Dependencies come from this environment's site-packages, added as a plain path: its .pth
    # files (among them the editable install of this repo) are not run, so the only
    # kaudit_analytics the new environment sees is the wheel's.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
    )
    kaudit = venv / "bin" / "kaudit"
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import kaudit_analytics; print(kaudit_analytics.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(site) in where
    help_text = subprocess.run(
        [str(kaudit), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "ingest" in help_text
    demo = subprocess.run(
        [str(kaudit), "demo", "--lake", str(tmp_path / "lake")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "0 quarantined" in demo
    assert (tmp_path / "lake" / "events").is_dir()
    lint = subprocess.run(
        [str(kaudit), "policy", "lint", "kubernetes-docs"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert lint.returncode in (0, 1), lint.stderr  # findings, not a missing catalogue file
