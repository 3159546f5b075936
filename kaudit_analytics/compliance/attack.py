"""MITRE ATT&CK (Enterprise, containers and cloud) techniques the controls cite, as data.

Every control names the techniques whose traces it finds (``Control.attack``); this table
gives each technique's name and tactics, so that a report can group controls by tactic.

Examples
--------
>>> from kaudit_analytics.compliance.attack import TECHNIQUES, tactics_of
>>> TECHNIQUES["T1609"].name
'Container Administration Command'
>>> tactics_of(("T1609", "T1611"))
('execution', 'privilege-escalation')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TACTICS", "TECHNIQUES", "Technique", "tactics_of"]

#: The enterprise tactics, in the kill-chain order ATT&CK shows them.
TACTICS: tuple[str, ...] = (
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)


@dataclass(frozen=True)
class Technique:
    """One ATT&CK technique or sub-technique."""

    id: str
    name: str
    tactics: tuple[str, ...]

    @property
    def url(self) -> str:
        """Its page on attack.mitre.org (a link in reports; nothing is fetched)."""
        return "https://attack.mitre.org/techniques/" + self.id.replace(".", "/") + "/"


_PE = ("persistence", "privilege-escalation")
_ACCOUNTS = ("initial-access", "persistence", "privilege-escalation", "defense-evasion")

TECHNIQUES: dict[str, Technique] = {
    t.id: t
    for t in (
        Technique("T1005", "Data from Local System", ("collection",)),
        Technique("T1040", "Network Sniffing", ("credential-access", "discovery")),
        Technique("T1053.007", "Container Orchestration Job", ("execution", *_PE)),
        Technique("T1059.004", "Unix Shell", ("execution",)),
        Technique("T1069", "Permission Groups Discovery", ("discovery",)),
        Technique("T1070", "Indicator Removal", ("defense-evasion",)),
        Technique("T1078", "Valid Accounts", _ACCOUNTS),
        Technique("T1078.001", "Default Accounts", _ACCOUNTS),
        Technique("T1078.004", "Cloud Accounts", _ACCOUNTS),
        Technique("T1087", "Account Discovery", ("discovery",)),
        Technique("T1090.003", "Multi-hop Proxy", ("command-and-control",)),
        Technique("T1098", "Account Manipulation", _PE),
        Technique("T1098.006", "Additional Container Cluster Roles", _PE),
        Technique("T1105", "Ingress Tool Transfer", ("command-and-control",)),
        Technique("T1110", "Brute Force", ("credential-access",)),
        Technique("T1133", "External Remote Services", ("initial-access", "persistence")),
        Technique(
            "T1134", "Access Token Manipulation", ("privilege-escalation", "defense-evasion")
        ),
        Technique("T1136", "Create Account", ("persistence",)),
        Technique("T1190", "Exploit Public-Facing Application", ("initial-access",)),
        Technique("T1525", "Implant Internal Image", ("persistence",)),
        Technique("T1528", "Steal Application Access Token", ("credential-access",)),
        Technique("T1543.005", "Container Service", _PE),
        Technique("T1552.001", "Credentials In Files", ("credential-access",)),
        Technique("T1552.005", "Cloud Instance Metadata API", ("credential-access",)),
        Technique("T1552.007", "Container API", ("credential-access",)),
        Technique(
            "T1556",
            "Modify Authentication Process",
            ("credential-access", "defense-evasion", "persistence"),
        ),
        Technique("T1557", "Adversary-in-the-Middle", ("credential-access", "collection")),
        Technique("T1562.001", "Disable or Modify Tools", ("defense-evasion",)),
        Technique("T1562.008", "Disable or Modify Cloud Logs", ("defense-evasion",)),
        Technique("T1578", "Modify Cloud Compute Infrastructure", ("defense-evasion",)),
        Technique("T1578.002", "Create Cloud Instance", ("defense-evasion",)),
        Technique("T1609", "Container Administration Command", ("execution",)),
        Technique("T1610", "Deploy Container", ("defense-evasion", "execution")),
        Technique("T1611", "Escape to Host", ("privilege-escalation",)),
        Technique("T1613", "Container and Resource Discovery", ("discovery",)),
        Technique("T1649", "Steal or Forge Authentication Certificates", ("credential-access",)),
    )
}


def tactics_of(technique_ids: Iterable[str]) -> tuple[str, ...]:
    """The tactics of some techniques, each once, in ``TACTICS`` order.

    Ids not in ``TECHNIQUES`` (e.g. from a user's Sigma rule) are left out.
    """
    found = {
        tactic for tid in technique_ids if tid in TECHNIQUES for tactic in TECHNIQUES[tid].tactics
    }
    return tuple(tactic for tactic in TACTICS if tactic in found)
