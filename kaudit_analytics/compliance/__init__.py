"""Compliance controls over the events table: the catalogue, its evidence, the results.

A ``Control`` names what it detects, how severe a finding is, which framework clauses it
supports (CIS Kubernetes Benchmark, PCI-DSS v4 requirement 10, SOC 2, HIPAA 164.312(b),
ISO/IEC 27001:2022 A.8.15), what the audit log must contain for it to be assessable (level,
stages, the requests in scope), and one evidence query that selects its findings from the
events. ``CONTROLS`` is the catalogue; adding a control is one entry there and one test.

For a window of events a control is ``pass``, ``fail`` (with a finding count and the
control's severity) or ``not assessable`` with a reason - never a silent pass: a control
passes only when the events it needs were logged at the level it needs. Given an audit
policy, ``policy_coverage`` evaluates each control's probe requests under it and says which
controls the policy can support at all.

Evidence rows (``EVIDENCE_SCHEMA``) say who, what, when, where from and with what outcome,
and carry ``source_file``/``source_line`` back to the raw log line. No request or response
body ever reaches them.

Everything here is lazy: ``evidence`` and ``observations`` return LazyFrames and
``decide`` turns their (small) collected results into ``ControlResult`` values;
``kaudit_analytics.report.assess`` is the edge that collects.

Examples
--------
>>> from kaudit_analytics.compliance import CONTROLS, control
>>> len(CONTROLS) >= 20
True
>>> c = control("privileged-pod")
>>> c.level, c.severity
('Request', 'high')
>>> sorted({clause.framework for clause in c.clauses})
['CIS Kubernetes Benchmark', 'HIPAA', 'ISO/IEC 27001:2022', 'PCI-DSS v4', 'SOC 2']
"""

from __future__ import annotations

from kaudit_analytics.compliance import sigma
from kaudit_analytics.compliance.assess import (
    EVIDENCE_SCHEMA,
    ControlResult,
    Coverage,
    control_evidence,
    decide,
    evidence,
    extra_columns,
    finish,
    observation_counts,
    observations,
    observations_from_counts,
    order_evidence,
    partials,
    policy_coverage,
    prepare,
)
from kaudit_analytics.compliance.attack import TACTICS, TECHNIQUES, Technique
from kaudit_analytics.compliance.controls import (
    CIS,
    CONTROLS,
    FRAMEWORKS,
    HIPAA,
    ISO,
    PCI,
    SEVERITIES,
    SOC2,
    STATUSES,
    Clause,
    Control,
    Probe,
    Severity,
    Status,
    control,
    severity_at_least,
)
from kaudit_analytics.compliance.evidence import (
    Context,
    EvidenceQuery,
    Flagged,
    Grouped,
    Where,
    baseline_rows,
)
from kaudit_analytics.compliance.settings import (
    Settings,
    SettingsError,
    load_settings,
    settings_rows,
)
from kaudit_analytics.window import Window

__all__ = [
    "CIS",
    "CONTROLS",
    "EVIDENCE_SCHEMA",
    "FRAMEWORKS",
    "HIPAA",
    "ISO",
    "PCI",
    "SEVERITIES",
    "SOC2",
    "STATUSES",
    "TACTICS",
    "TECHNIQUES",
    "Clause",
    "Context",
    "Control",
    "ControlResult",
    "Coverage",
    "EvidenceQuery",
    "Flagged",
    "Grouped",
    "Probe",
    "Settings",
    "SettingsError",
    "Severity",
    "Status",
    "Technique",
    "Where",
    "Window",
    "baseline_rows",
    "control",
    "control_evidence",
    "decide",
    "evidence",
    "extra_columns",
    "finish",
    "load_settings",
    "observation_counts",
    "observations",
    "observations_from_counts",
    "order_evidence",
    "partials",
    "policy_coverage",
    "prepare",
    "settings_rows",
    "severity_at_least",
    "sigma",
]
