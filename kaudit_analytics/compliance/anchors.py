"""How the catalogue covers the audit-log detections of Falco, Elastic, Sigma and Panther.

``anchors.yaml`` lists every Kubernetes audit-log rule of the four projects (what it detects,
whether it is off by default or deprecated, and - for a rule no control covers - why not);
each ``Control.covers`` names the rules it covers. ``coverage_table`` joins the two and
``coverage_markdown`` renders ``docs/coverage.md``, which is generated, never written by hand
(``python -m kaudit_analytics.compliance.anchors > docs/coverage.md``; a test checks it).

Examples
--------
>>> from kaudit_analytics.compliance.anchors import coverage_counts
>>> counts = coverage_counts()
>>> counts["all"]["rules"], counts["all"]["covered"] >= 0.95 * counts["all"]["rules"]
(143, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import polars as pl
import yaml

from kaudit_analytics.compliance.controls import CONTROLS, Control

__all__ = ["ANCHORS", "anchor_rules", "coverage_counts", "coverage_markdown", "coverage_table"]

ANCHORS: tuple[str, ...] = ("Falco", "Elastic", "Sigma", "Panther")


@cache
def _data() -> dict[str, Any]:
    text = resources.files("kaudit_analytics.compliance").joinpath("anchors.yaml")
    loaded = yaml.safe_load(text.read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def anchor_rules() -> pl.DataFrame:
    """Every anchor rule: id, anchor, title, detects, status, off_by_default, gap."""
    rows = [
        {
            "id": rule["id"],
            "anchor": rule["anchor"],
            "title": rule["title"],
            "detects": rule["detects"],
            "status": rule.get("status", "counted"),
            "off_by_default": bool(rule.get("off_by_default", False)),
            "gap": rule.get("gap"),
        }
        for rule in _data()["rules"]
    ]
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.String,
            "anchor": pl.String,
            "title": pl.String,
            "detects": pl.String,
            "status": pl.String,
            "off_by_default": pl.Boolean,
            "gap": pl.String,
        },
    )


def coverage_table(controls: Iterable[Control] = CONTROLS) -> pl.DataFrame:
    """One row per anchor rule: the controls that cover it (with how), or the gap's reason.

    Raises
    ------
    ValueError
        When a control cites a rule that ``anchors.yaml`` does not list.
    """
    rules = anchor_rules()
    known = set(rules["id"])
    cited: dict[str, list[str]] = {}
    for ctrl in controls:
        for rule_id, note in ctrl.covers.items():
            if rule_id not in known:
                msg = f"control {ctrl.id} covers {rule_id!r}, which anchors.yaml does not list"
                raise ValueError(msg)
            cited.setdefault(rule_id, []).append(f"`{ctrl.id}`" + (f" ({note})" if note else ""))
    how = pl.DataFrame(
        {"id": list(cited), "controls": ["; ".join(v) for v in cited.values()]},
        schema={"id": pl.String, "controls": pl.String},
    )
    return rules.join(how, on="id", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("controls").is_not_null())
        .then(pl.lit("covered"))
        .otherwise(pl.lit("gap"))
        .alias("verdict")
    )


def coverage_counts(controls: Iterable[Control] = CONTROLS) -> dict[str, dict[str, int]]:
    """Counted rules, covered and gaps, per anchor and for ``all``."""
    table = coverage_table(controls).filter(pl.col("status") == "counted")
    counts: dict[str, dict[str, int]] = {}
    for anchor in (*ANCHORS, "all"):
        mine = table if anchor == "all" else table.filter(pl.col("anchor") == anchor)
        covered = mine.filter(pl.col("verdict") == "covered").height
        counts[anchor] = {"rules": mine.height, "covered": covered, "gaps": mine.height - covered}
    return counts


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def coverage_markdown(controls: Iterable[Control] = CONTROLS) -> str:
    """``docs/coverage.md``: the counts, every rule with its controls, and every gap."""
    controls = tuple(controls)
    table = coverage_table(controls)
    counts = coverage_counts(controls)
    total = counts["all"]
    out = [
        "# Coverage of other projects' audit-log detections",
        "",
        "Generated from the controls catalogue (`Control.covers`) and "
        "`kaudit_analytics/compliance/anchors.yaml` by "
        "`python -m kaudit_analytics.compliance.anchors > docs/coverage.md`; do not edit.",
        "",
        "A rule is covered when every event it is built to fire on is a finding of the named "
        "control(s), apart from what each control states it leaves out (the cluster's own "
        "machinery, mostly: see `excludes` in the catalogue and in every report). A note says "
        "when a rule is covered by a named part of a control, or needs a setting.",
        "",
        "Differences that remain inside covered rules, by design:",
        "",
        "- First-seen rules (Elastic's `new_terms` over 7 to 10 days of history) compare with "
        "the previous report window of the same length: a 7-day report matches them.",
        "- Panther drops cloud providers' addresses with an IP-to-ASN enrichment; here the "
        "provider's ranges go in `settings.trusted_cidrs`. Tor and indicator lists go in "
        "`settings.untrusted_cidrs`, as Panther's lookup tables are supplied to it.",
        "- Thresholds follow the anchors where they agree (3 distinct Secrets, 10 forbidden "
        "requests per public address in 30 minutes); Panther's 15 distinct Secrets in 30 "
        "minutes always contains 3 within one 10-minute bucket.",
        "- Most controls report what succeeded; refused and failed attempts at exec, "
        "impersonation, Secret reads, RBAC escalation and node registration are findings of "
        "their own `*-failed` controls, and every 401/403 is one of `denied-requests`.",
        "",
        f"**{total['covered']} of {total['rules']} rules covered "
        f"({total['covered'] / total['rules']:.1%}); {total['gaps']} gap(s), explained below.**",
        "",
        "| anchor | rules | covered | gaps |",
        "|---|---:|---:|---:|",
    ]
    for anchor in (*ANCHORS, "all"):
        count = counts[anchor]
        name = f"**{anchor}**" if anchor == "all" else anchor
        out.append(f"| {name} | {count['rules']} | {count['covered']} | {count['gaps']} |")
    sources = _data()["anchors"]
    for anchor in ANCHORS:
        out += ["", f"## {anchor}", "", f"Rules read from {sources[anchor]}.", ""]
        out += ["| rule | detects | control(s) | verdict |", "|---|---|---|---|"]
        for row in table.filter(pl.col("anchor") == anchor).iter_rows(named=True):
            flags = [
                "off by default" if row["off_by_default"] else "",
                row["status"] if row["status"] != "counted" else "",
            ]
            title = row["title"] + "".join(f" *({flag})*" for flag in flags if flag)
            verdict = (
                row["verdict"] if row["status"] == "counted" else f"{row['verdict']}, not counted"
            )
            out.append(
                f"| {_cell(title)} | {_cell(row['detects'])} | "
                f"{_cell(row['controls']) or '-'} | {verdict} |"
            )
    gaps = table.filter(pl.col("verdict") == "gap")
    out += ["", "## Gaps", ""]
    for row in gaps.iter_rows(named=True):
        reason = row["gap"] or (
            "not applicable: a disabled catch-all of every event"
            if row["status"] == "not applicable"
            else "no reason recorded"
        )
        out.append(f"- **{row['anchor']}: {row['title']}** ({row['status']}): {_cell(reason)}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - the docs generator
    print(coverage_markdown(), end="")
