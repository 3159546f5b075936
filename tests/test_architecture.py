"""The folder tree is the architecture: imports flow down the layers, and the docs say so.

The layers and the other import contracts are import-linter's (``pyproject.toml``); what it
cannot see (private *names* imported across packages, what a command loads at run time, the
docs matching the tree) is checked here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGE = REPO / "kaudit_analytics"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())", "--no-cache", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_import_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("schema.py", "from kaudit_analytics import report", "Imports flow down the layers"),
        ("policy/model.py", "import kaudit_analytics.compliance", "Imports flow down the layers"),
        ("lake.py", "import altair", "Loading logs needs neither altair"),
        ("report/model.py", "from kaudit_analytics.sample import generate", "Product code"),
        ("compliance/controls.py", "from kaudit_analytics.spark._arrow import Out", "Private"),
    ],
)  # fmt: skip
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    """The contracts can fail: a copy of the package with one bad import is refused."""
    shutil.copytree(PACKAGE, tmp_path / "kaudit_analytics", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "kaudit_analytics" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert re.search(re.escape(contract) + r".* BROKEN", result.stdout), result.stdout


def _package_of(module: str) -> str:
    """``kaudit_analytics.policy.volume`` -> ``policy``; a root module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private_uses(path: Path, root: Path = REPO) -> list[str]:
    """Private names this file takes from another package of kaudit_analytics."""
    here = _package_of(".".join(path.relative_to(root).with_suffix("").parts))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kaudit_analytics"):
            module = node.module or ""
            for alias in node.names:
                target = f"{module}.{alias.name}" if module == "kaudit_analytics" else module
                aliases[alias.asname or alias.name] = target
                if alias.name.startswith("_") and _package_of(target) != here:
                    found.append(f"{path.name}:{node.lineno} imports {module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kaudit_analytics") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _package_of(aliases[node.value.id]) != here
        ):
            found.append(f"{path.name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.slow
def test_no_package_uses_another_packages_private_names() -> None:
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in _private_uses(path)]
    assert found == []


def test_the_private_names_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "kaudit_analytics" / "report").mkdir(parents=True)
    bad = tmp_path / "kaudit_analytics" / "report" / "model.py"
    bad.write_text("from kaudit_analytics.lake import _atomic_write\n", encoding="utf-8")
    assert _private_uses(bad, tmp_path) == [
        "model.py:1 imports kaudit_analytics.lake._atomic_write"
    ]


@pytest.mark.slow
def test_kaudit_ingest_loads_neither_altair_jinja2_nor_pyspark(tmp_path: Path) -> None:
    """What a command imports at run time, not only what its modules import at the top."""
    code = (
        "import sys\n"
        "from kaudit_analytics.cli import main\n"
        "from kaudit_analytics.testing import SAMPLE_DIR\n"
        f"try:\n    main(['ingest', str(SAMPLE_DIR), '--lake', {str(tmp_path / 'lake')!r}])\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('altair', 'jinja2', 'pyspark', 'vl_convert', 'rich')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_package_folder_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(init.parent.relative_to(REPO).parts) for init in PACKAGE.rglob("__init__.py")
    }
    assert folders <= listed


def _tree_names() -> set[str]:
    """The package's modules and subpackages, as the layout sections name them."""
    names = {path.name for path in PACKAGE.glob("*.py")}
    names |= {f"{init.parent.name}/" for init in PACKAGE.glob("*/__init__.py")}
    return names


def _layout_block(text: str, heading: str) -> str:
    section = text.split(heading, 1)[1]
    return section.split("```", 2)[1]


@pytest.mark.parametrize(("doc", "heading"), [("README.md", "## Layout")])
def test_the_layout_section_matches_the_tree(doc: str, heading: str) -> None:
    block = _layout_block((REPO / doc).read_text(encoding="utf-8"), heading)
    named = set(re.findall(r"^\s{2}([a-z_]+(?:\.py|/))", block, flags=re.M))
    assert named == _tree_names()


def test_design_names_every_layer_and_package() -> None:
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    layers = design.split("## Layers", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"[a-z_]+", layers))
    modules = {name.rstrip("/").removesuffix(".py") for name in _tree_names()} - {"__init__"}
    assert modules <= named
