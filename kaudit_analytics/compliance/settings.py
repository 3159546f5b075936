"""What a site tunes: allow-lists, thresholds and local conventions, from one YAML file.

``Settings`` holds every value a control reads besides the events; ``load_settings`` reads a
YAML mapping whose keys are the field names (unknown keys are an error that names the nearest
known one), and ``settings_rows`` lists the values a report ran with, so that every report
says how it was tuned.

Lists of names (users, groups, namespaces, images, nodes) are glob patterns: ``*`` matches any
run of characters, ``?`` one character, everything else itself; ``system:serviceaccount:ci:*``
matches every service account of ``ci``. Address ranges are IPv4 CIDRs (``10.0.0.0/8``) or single
addresses (IPv4 or IPv6). Durations are written ``90s``, ``10m``, ``1h``, ``2d``.

Examples
--------
>>> from kaudit_analytics.compliance.settings import load_settings
>>> st = load_settings("secret_burst: 50\\nallowed_registries: [registry.example.com]\\n")
>>> st.secret_burst, st.allowed_registries
(50, ('registry.example.com',))
>>> try:
...     load_settings("secret_brust: 5")
... except SettingsError as error:
...     print(error)
unknown setting 'secret_brust' (did you mean 'secret_burst'?)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

__all__ = [
    "Settings",
    "SettingsError",
    "glob_regex",
    "in_ranges",
    "load_settings",
    "matches_any",
    "settings_rows",
]


class SettingsError(ValueError):
    """A settings file cannot be read, names an unknown setting, or holds a wrong value."""


_KUBE_SYSTEM_CONTROLLERS = "system:serviceaccount:kube-system:clusterrole-aggregation-controller"


@dataclass(frozen=True)
class Settings:
    """Thresholds, allow-lists and local conventions the controls use.

    Change one with ``dataclasses.replace``; read a file with ``load_settings``.

    Examples
    --------
    >>> import dataclasses
    >>> dataclasses.replace(Settings(), secret_burst=50).secret_burst
    50
    """

    # --- people and time ------------------------------------------------------------------
    #: Local working hours ``[start, end)`` and ISO weekdays (Monday = 1) of the humans.
    working_hours: tuple[int, int] = (8, 18)
    working_days: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3, 4, 5}))
    timezone: str = "UTC"

    # --- thresholds -----------------------------------------------------------------------
    #: Bursts are counted in fixed buckets of this length.
    burst_window: dt.timedelta = dt.timedelta(minutes=10)
    #: Secret reads by one identity within one burst bucket that make a burst.
    secret_burst: int = 20
    #: Distinct Secrets one identity reads within one burst bucket (Elastic fires at 3).
    secret_enumeration: int = 3
    #: 401/403 responses for one identity and address within one burst bucket.
    auth_failure_burst: int = 10
    #: 403 responses from one public address (all identities together) within ``flood_window``.
    public_denied_burst: int = 10
    flood_window: dt.timedelta = dt.timedelta(minutes=30)
    #: Distinct resource kinds of the discovery list one identity reads within ``discovery_window``.
    discovery_kinds: int = 3
    discovery_window: dt.timedelta = dt.timedelta(minutes=1)
    #: Permission enumeration: more than this many distinct URIs and resources within one burst
    #: bucket, with at least one refusal (or ``enumeration_not_found`` 404s).
    enumeration_uris: int = 5
    enumeration_resources: int = 3
    enumeration_not_found: int = 3
    #: An RBAC change followed by a workload write of the same identity within this long.
    sequence_window: dt.timedelta = dt.timedelta(minutes=5)
    #: Longest silence in one cluster's audit stream that is not a gap (PCI 10.2.1.6).
    gap_threshold: dt.timedelta = dt.timedelta(hours=1)
    #: A request younger than this at the window's end may still complete after it.
    stage_grace: dt.timedelta = dt.timedelta(hours=2)

    # --- who is who -----------------------------------------------------------------------
    #: Identities treated like the cluster's own machinery (controllers, CI robots you trust):
    #: controls that leave the machinery out leave these out too.
    trusted_users: tuple[str, ...] = ()
    #: kube-system service accounts whose RBAC writes are their job (every other kube-system
    #: service account writing RBAC is a finding).
    trusted_rbac_writers: tuple[str, ...] = (_KUBE_SYSTEM_CONTROLLERS,)
    #: Allow-list of identities (users or groups); empty means "not configured" and the
    #: ``disallowed-user`` control is not assessable. ``system:`` identities are never checked.
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    #: Shared administrator credentials (Falco's ``Full K8s Administrative Access``).
    admin_users: tuple[str, ...] = (
        "admin",
        "kubernetes-admin",
        "kubernetes-admin@*",
        "minikube-user",
        "masterclient",
    )
    #: Impersonation targets that amount to taking over the cluster.
    privileged_identities: tuple[str, ...] = (
        "admin",
        "cluster-admin",
        "kubernetes-admin",
        "system:admin",
        "system:apiserver",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:node:*",
        "system:serviceaccount:kube-system:*",
    )
    privileged_groups: tuple[str, ...] = ("system:masters", "cluster-admin", "system:nodes")
    #: Roles whose binding is an escalation (Panther's list; system:masters is a group).
    privileged_roles: tuple[str, ...] = (
        "cluster-admin",
        "admin",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:masters",
    )

    # --- where ----------------------------------------------------------------------------
    #: Namespaces of the platform itself: writes there by anyone but the machinery are findings.
    system_namespaces: tuple[str, ...] = (
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gke-system",
        "gke-managed-*",
        "gmp-system",
        "gmp-public",
        "azure-arc",
        "amazon-cloudwatch",
    )
    #: Namespaces where a Secret list by anyone but the machinery is a finding.
    sensitive_namespaces: tuple[str, ...] = ("kube-system", "default")
    #: Allow-lists of images (``registry/repo:tag`` globs), registries and node names; empty
    #: means "not configured" and the control is not assessable.
    allowed_images: tuple[str, ...] = ()
    allowed_registries: tuple[str, ...] = ()
    allowed_nodes: tuple[str, ...] = ()
    #: Address ranges that count as the cluster's own network, besides the private, loopback,
    #: link-local and shared ranges (which always do).
    trusted_cidrs: tuple[str, ...] = ()
    #: Address ranges every request from which is a finding (e.g. a Tor exit-node list).
    untrusted_cidrs: tuple[str, ...] = ()

    # --- what -----------------------------------------------------------------------------
    #: hostPath prefixes that give a container the node (Falco's and Elastic's lists).
    sensitive_host_paths: tuple[str, ...] = (
        "/",
        "/proc*",
        "/sys*",
        "/dev*",
        "/boot*",
        "/root*",
        "/home/admin*",
        "/etc*",
        "/var/run",
        "/var/run/docker.sock",
        "/var/run/crio*",
        "/var/run/containerd*",
        "/run/containerd*",
        "/run/crio*",
        "/var/lib/kubelet*",
        "/var/lib/etcd*",
        "/var/lib/docker*",
        "/var/log*",
    )
    #: Added Linux capabilities that are container-escape primitives.
    dangerous_capabilities: tuple[str, ...] = (
        "ALL",
        "SYS_ADMIN",
        "NET_ADMIN",
        "BPF",
        "PERFMON",
        "SYS_PTRACE",
        "SYS_MODULE",
        "DAC_READ_SEARCH",
        "DAC_OVERRIDE",
        "SYS_RAWIO",
        "SYS_BOOT",
        "SYSLOG",
    )
    #: User agents of scripts: a Secret read by one of them is a finding (regular expressions,
    #: case insensitive, matched anywhere in the agent).
    script_user_agents: tuple[str, ...] = (
        "curl",
        "wget",
        "python",
        "go-http-client",
        "okhttp",
        "kali",
    )
    #: User agents of attack and scanning tools: any request by one is a finding.
    tool_user_agents: tuple[str, ...] = (
        "trufflehog",
        "access_matrix",
        "azurehound",
        "micro-scanner",
        "kube-hunter",
        "peirates",
        "kubiscan",
        "kubeletctl",
    )
    #: Key names that put a credential in a ConfigMap (regular expressions, case insensitive).
    credential_keys: tuple[str, ...] = (
        "aws[_-]?(?:s3[_-]?)?access[_-]?key[_-]?id",
        "aws[_-]?secret[_-]?access[_-]?key",
        "password",
        "passphrase",
        "passwd",
        "private[_-]?key",
        "api[_-]?key",
        "client[_-]?secret",
    )


# --------------------------------------------------------------------------- patterns

_REGEX_SPECIAL = re.compile(r"([\\.+()|\[\]{}^$#&\-~])")


def glob_regex(patterns: Iterable[str]) -> str:
    """One anchored regular expression for glob patterns (``*`` any run, ``?`` one character).

    Examples
    --------
    >>> glob_regex(["system:node:*", "admin"])
    '^(?:system:node:.*|admin)$'
    """
    parts = []
    for pattern in patterns:
        escaped = _REGEX_SPECIAL.sub(r"\\\1", pattern)
        parts.append(escaped.replace("*", ".*").replace("?", "."))
    return "^(?:" + "|".join(parts) + ")$" if parts else "^$a"  # "$a": matches nothing


def matches_any(expr: pl.Expr, patterns: Iterable[str]) -> pl.Expr:
    """Whether a string expression matches one of the glob patterns (False for null).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"u": ["system:node:n1", "bob", None]})
    >>> df.select(matches_any(pl.col("u"), ["system:node:*"]))["u"].to_list()
    [True, False, False]
    """
    patterns = tuple(patterns)
    if not patterns:
        return pl.lit(value=False)
    return expr.str.contains(glob_regex(patterns)).fill_null(value=False)


def _ipv4_number(ip: pl.Expr) -> pl.Expr:
    parts = ip.str.extract_groups(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
    octets = [parts.struct.field(str(i)).cast(pl.Int64) for i in (1, 2, 3, 4)]
    return octets[0] * 16_777_216 + octets[1] * 65_536 + octets[2] * 256 + octets[3]


def in_ranges(ip: pl.Expr, cidrs: Iterable[str]) -> pl.Expr:
    """Whether an address (string) lies in one of the ranges (False for null or no match).

    IPv4 ranges are compared as numbers; IPv6 entries must be single addresses.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"ip": ["10.1.2.3", "8.8.8.8", "::1", None]})
    >>> df.select(in_ranges(pl.col("ip"), ["10.0.0.0/8", "::1"]).alias("in"))["in"].to_list()
    [True, False, True, False]
    """
    number = _ipv4_number(ip)
    hits: list[pl.Expr] = []
    for text in cidrs:
        network = ipaddress.ip_network(text, strict=False)
        if isinstance(network, ipaddress.IPv4Network):
            low, high = int(network.network_address), int(network.broadcast_address)
            hits.append(number.is_between(low, high))
        else:
            hits.append(ip.str.to_lowercase() == str(network.network_address))
    if not hits:
        return pl.lit(value=False)
    return pl.any_horizontal(hits).fill_null(value=False)


# --------------------------------------------------------------------------- loading

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_HINTS = typing.get_type_hints(Settings)


def _duration(name: str, value: object) -> dt.timedelta:
    match = _DURATION.match(str(value))
    if not match:
        msg = f"setting {name!r} must be a duration such as 90s, 10m, 1h or 2d, not {value!r}"
        raise SettingsError(msg)
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _strings(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        msg = f"setting {name!r} must be a list of names, not {value!r}"
        raise SettingsError(msg)
    return tuple(str(v) for v in value)


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"setting {name!r} must be a whole number (0 or more), not {value!r}"
        raise SettingsError(msg)
    return value


def _convert(name: str, value: object) -> Any:
    hint = _HINTS[name]
    if hint is dt.timedelta:
        return _duration(name, value)
    if hint is int:
        return _whole(name, value)
    if hint is str:
        return str(value)
    if name == "working_hours":
        hours = value if isinstance(value, list) else None
        if not hours or len(hours) != 2 or not all(isinstance(h, int) for h in hours):
            msg = f"setting 'working_hours' must be [start, end] in whole hours, not {value!r}"
            raise SettingsError(msg)
        return (int(hours[0]), int(hours[1]))
    if name == "working_days":
        days = [_whole(name, day) for day in (value if isinstance(value, list) else [value])]
        return frozenset(days)
    origin = typing.get_origin(hint)
    if origin is tuple or isinstance(hint, types.GenericAlias):
        return _strings(name, value)
    msg = f"setting {name!r} cannot be read from {value!r}"  # pragma: no cover - every type above
    raise SettingsError(msg)


def _check(settings: Settings) -> Settings:
    start, end = settings.working_hours
    if not (0 <= start < end <= 24):
        msg = (
            f"setting 'working_hours' must be 0 <= start < end <= 24, not {settings.working_hours}"
        )
        raise SettingsError(msg)
    if not settings.working_days <= set(range(1, 8)):
        msg = "setting 'working_days' holds ISO weekdays, 1 (Monday) to 7 (Sunday)"
        raise SettingsError(msg)
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"setting 'timezone': unknown time zone {settings.timezone!r} (e.g. Europe/Paris)"
        raise SettingsError(msg) from None
    for name in ("trusted_cidrs", "untrusted_cidrs"):
        for text in getattr(settings, name):
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                msg = f"setting {name!r}: {text!r} is not an address or CIDR range"
                raise SettingsError(msg) from None
            if isinstance(network, ipaddress.IPv6Network) and network.num_addresses > 1:
                msg = f"setting {name!r}: IPv6 ranges are not supported yet, only addresses"
                raise SettingsError(msg)
    for name in ("script_user_agents", "tool_user_agents", "credential_keys"):
        for pattern in getattr(settings, name):
            try:
                re.compile(pattern)
            except re.error as error:
                msg = f"setting {name!r}: {pattern!r} is not a regular expression ({error})"
                raise SettingsError(msg) from None
    return settings


def settings_from_mapping(
    values: Mapping[str, object], *, base: Settings | None = None
) -> Settings:
    """Settings from a mapping of field names to YAML-like values (what a file holds)."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _FIELDS:
            near = difflib.get_close_matches(str(key), list(_FIELDS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            msg = f"unknown setting {key!r}{hint}"
            raise SettingsError(msg)
        changes[key] = _convert(key, value)
    return _check(dataclasses.replace(base or Settings(), **changes))


def load_settings(
    source: str | os.PathLike[str] | None, *, base: Settings | None = None
) -> Settings:
    """Settings from a YAML file (a path) or YAML text; what is not given keeps its default
    (``None``: ``base``, or the defaults).

    Raises
    ------
    SettingsError
        When the file cannot be read, is not a YAML mapping, names an unknown setting or holds
        a value of the wrong kind, in one sentence naming the setting.
    """
    if source is None:
        return base or Settings()
    text = os.fspath(source)
    where = ""
    if isinstance(source, os.PathLike) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
        path = Path(text)
        where = f" in {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            msg = f"cannot read the settings file {path}: {error.strerror}"
            raise SettingsError(msg) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        msg = f"the settings{where} are not valid YAML{line}"
        raise SettingsError(msg) from None
    if values is None:
        return base or Settings()
    if not isinstance(values, dict):
        msg = f"the settings{where} must be a YAML mapping of setting names to values"
        raise SettingsError(msg)
    try:
        return settings_from_mapping(values, base=base)
    except SettingsError as error:
        raise SettingsError(f"{error}{where}") from None


def _text(value: object) -> str:
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    if isinstance(value, frozenset):
        return ", ".join(str(v) for v in sorted(value))
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)


def settings_rows(settings: Settings) -> tuple[tuple[str, str], ...]:
    """Every setting and the value it had, as text, in declaration order.

    Examples
    --------
    >>> dict(settings_rows(Settings()))["burst_window"]
    '10m'
    """
    return tuple((f.name, _text(getattr(settings, f.name))) for f in dataclasses.fields(settings))
