"""Users' own detections in the field's own format: Sigma rules as compliance controls.

``load_rules`` reads Sigma rules (files or folders of ``*.yml``; logsource product
``kubernetes``, service ``audit``) through pySigma, converts each into one polars expression
over the events table with the field mapping in ``sigma_fields.yaml`` (Sigma's audit-event
field names onto columns, and JSON paths into ``request_object``/``response_object``), and
returns them as ``Control`` values: they run next to the built-in controls, in the same
report, with the same evidence rows (one per matching request, pointing at its log line).

A rule that cannot run (another log source, a correlation rule, a field the lake does not
keep, a regular expression polars cannot run) is not silently dropped: it is returned in
``problems`` with the reason, and ``kaudit report`` prints it.

Examples
--------
>>> from kaudit_analytics.compliance.sigma import load_rules
>>> rule = '''
... title: Events deleted
... id: 3132b3c8-6e8c-4b5a-9d5f-2b0e5c1f2a11
... logsource: {product: kubernetes, service: audit}
... detection:
...   selection: {verb: delete, objectRef.resource: events}
...   condition: selection
... level: medium
... tags: [attack.t1070]
... '''
>>> loaded = load_rules([rule])
>>> [c.id for c in loaded.controls], loaded.problems
(['sigma:3132b3c8-6e8c-4b5a-9d5f-2b0e5c1f2a11'], ())
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kaudit_analytics import schema as s
from kaudit_analytics.compliance.attack import TECHNIQUES
from kaudit_analytics.compliance.controls import Clause, Control, Severity
from kaudit_analytics.compliance.evidence import CATEGORICAL, where

__all__ = ["LoadedRules", "load_rules"]

_SEVERITY: dict[str, Severity] = {
    "informational": "info",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}


@dataclass(frozen=True)
class LoadedRules:
    """The Sigma rules that run, as controls, and the ones that cannot, with the reason."""

    controls: tuple[Control, ...]
    #: (rule file or title, reason) for every rule that was skipped.
    problems: tuple[tuple[str, str], ...]


def _schema() -> dict[str, pl.DataType]:
    # As ``prepare`` keeps them: the columns controls compare with literals are categorical.
    return {
        name: pl.Categorical() if name in CATEGORICAL else dtype
        for name, dtype in s.AUDIT_SCHEMA.items()
    }


def _collection(sources: Sequence[str | Path]) -> Any:
    from sigma.collection import SigmaCollection

    paths: list[str | Path] = []
    texts: list[str] = []
    for source in sources:
        if isinstance(source, Path) or "\n" not in str(source):
            path = Path(source)
            found = (
                sorted([*path.rglob("*.yml"), *path.rglob("*.yaml")]) if path.is_dir() else [path]
            )
            paths += found
        else:
            texts.append(str(source))
    collections = [SigmaCollection.load_ruleset(paths, collect_errors=True)] if paths else []
    collections += [SigmaCollection.from_yaml(text, collect_errors=True) for text in texts]
    return SigmaCollection.merge(collections) if collections else SigmaCollection([])


def _techniques(tags: Sequence[Any]) -> tuple[str, ...]:
    found = []
    for tag in tags:
        text = str(tag).lower()
        match = re.match(r"^attack\.(t\d{4}(?:\.\d{3})?)$", text)
        if match and match.group(1).upper() in TECHNIQUES:
            found.append(match.group(1).upper())
    return tuple(found)


def _control(rule: Any, expr: pl.Expr, source: str) -> Control:
    level = rule.level.name.lower() if rule.level else "medium"
    reads = tuple(sorted(set(expr.meta.root_names())))
    body = any(name in (s.REQUEST_OBJECT, s.RESPONSE_OBJECT) for name in reads)
    return Control(
        id=f"sigma:{rule.id or re.sub(r'[^a-z0-9]+', '-', rule.title.lower()).strip('-')}",
        title=str(rule.title),
        detects=str(rule.description or rule.title).strip(),
        severity=_SEVERITY.get(level, "medium"),
        clauses=(Clause("HIPAA", "164.312(b)"), Clause("ISO/IEC 27001:2022", "A.8.15")),
        evidence=where(expr),
        probes=(),
        attack=_techniques(rule.tags or ()),
        excludes=f"what the Sigma rule excludes itself ({Path(source).name})",
        level="Request" if body else "Metadata",
        reads=reads,
    )


def load_rules(sources: str | Path | Sequence[str | Path] | None) -> LoadedRules:
    """Sigma rules (files, folders, or YAML text) as controls, and the problems of the others.

    ``None`` or no sources give no rules, and need no pySigma: a caller passes its option
    through whether or not the user gave one.

    Raises
    ------
    ImportError
        When there are rules to load and pySigma is not installed
        (``pip install kaudit-analytics[sigma]``).

    Examples
    --------
    >>> load_rules(None)
    LoadedRules(controls=(), problems=())
    """
    if sources is None or isinstance(sources, str | Path):
        sources = [] if sources is None else [sources]
    if not sources:
        return LoadedRules((), ())
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    from kaudit_analytics.compliance._sigma_backend import PolarsBackend, combine

    backend = PolarsBackend(_schema(), collect_errors=True)
    backend.init_processing_pipeline()
    controls: list[Control] = []
    problems: list[tuple[str, str]] = []
    for rule in _collection(sources).rules:
        source = str(getattr(rule.source, "path", "") or rule.title or "<text>")
        if rule.errors:
            problems += [(source, str(error)) for error in rule.errors]
            continue
        if not isinstance(rule, SigmaRule):
            problems.append((source, "correlation rules are not supported: write a control"))
            continue
        before = len(backend.errors)
        try:
            exprs = backend.convert_rule(rule)
        except SigmaError as error:
            problems.append((source, str(error)))
            continue
        if len(backend.errors) > before:
            problems += [(source, str(error)) for _, error in backend.errors[before:]]
            continue
        if exprs:
            ctrl = _control(rule, combine(exprs), source)
            taken = {c.id for c in controls}
            if ctrl.id in taken:  # two rules with one id: keep both, told apart
                ctrl = dataclasses.replace(ctrl, id=f"{ctrl.id}-{len(controls) + 1}")
            controls.append(ctrl)
    return LoadedRules(tuple(controls), tuple(problems))
