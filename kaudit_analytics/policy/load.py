"""Decoding and validating ``audit.k8s.io/v1`` Policy documents as kube-apiserver does.

The apiserver (``reader.go``) decodes strictly, falls back to a lenient decode that drops
unknown fields with only a warning, rejects any group/version but ``audit.k8s.io/v1``,
runs ``validation.ValidatePolicy`` and finally refuses a policy with no rules. Type
errors (``users: tim``) are decode errors with no fallback. Messages follow the
apiserver's ``field.Error`` wording: ``rules[0].level: Required value``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kaudit_analytics.policy.rules import (
    GROUP_RESOURCE_KEYS,
    POLICY_KEYS,
    RULE_KEYS,
    VALID_STAGES,
    GroupResources,
    PolicyError,
    PolicyRule,
)
from kaudit_analytics.schema import LEVELS, STAGES

__all__ = ["ParsedPolicy", "parse_policy", "read_policy_text"]

API_VERSION = "audit.k8s.io/v1"
_REMOVED_VERSIONS = {"audit.k8s.io/v1beta1": "1.24", "audit.k8s.io/v1alpha1": "1.24"}
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@dataclass(frozen=True, slots=True)
class ParsedPolicy:
    """A decoded, validated policy; ``unknown_fields`` are the paths the apiserver drops."""

    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    unknown_fields: tuple[str, ...]


def read_policy_text(source: str | Path) -> tuple[str, str]:
    """Return ``(text, name)`` for a path or for YAML text given directly."""
    # Text has a newline or a "key: value"; pass a Path for a file name containing ":".
    if isinstance(source, Path) or ("\n" not in source and ":" not in source):
        path = Path(source)
        if str(source) == "":
            msg = "file path not specified"
            raise PolicyError(msg)
        try:
            return path.read_text(encoding="utf-8"), path.name
        except OSError as err:
            msg = f"failed to read audit policy file {str(path)!r}: {err.strerror or err}"
            raise PolicyError(msg) from err
    return source, "<text>"


def _quote(value: Any) -> str:
    return '"' + str(value).replace('"', '\\"') + '"'


class _Decoder:
    """A typed decode of the YAML tree that records unknown keys instead of failing."""

    def __init__(self) -> None:
        self.unknown: list[str] = []

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            msg = f"failed decoding: {path or 'policy'}: expected an object, got {_kind(value)}"
            raise PolicyError(msg)
        return value

    def known(self, value: Mapping[str, Any], keys: frozenset[str], path: str) -> None:
        for key in value:
            if key not in keys:
                self.unknown.append(f"{path}.{key}" if path else str(key))

    def string(self, value: Any, path: str) -> str:
        # JSON null decodes into a Go string as "" without error.
        if value is None:
            return ""
        if not isinstance(value, str):
            msg = f"failed decoding: {path}: expected a string, got {_kind(value)}"
            raise PolicyError(msg)
        return value

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            msg = f"failed decoding: {path}: expected a list of strings, got {_kind(value)}"
            raise PolicyError(msg)
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(value))

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            msg = f"failed decoding: {path}: expected a list, got {_kind(value)}"
            raise PolicyError(msg)
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            msg = f"failed decoding: {path}: expected true or false, got {_kind(value)}"
            raise PolicyError(msg)
        return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _check_header(doc: Mapping[str, Any], decoder: _Decoder) -> None:
    api_version = decoder.string(doc.get("apiVersion"), "apiVersion")
    kind = decoder.string(doc.get("kind"), "kind")
    if api_version in _REMOVED_VERSIONS:
        msg = (
            f"apiVersion: {api_version} is no longer served (removed in Kubernetes "
            f"{_REMOVED_VERSIONS[api_version]}): change the header to "
            f"'apiVersion: {API_VERSION}' (the fields are the same)"
        )
        raise PolicyError(msg)
    if api_version == "":
        msg = f"apiVersion: Required value: unknown group version in policy, use {API_VERSION}"
        raise PolicyError(msg)
    if api_version != API_VERSION:
        msg = (
            f'apiVersion: Unsupported value: "{api_version}": no kind "Policy" is registered '
            f'for version "{api_version}"; use {API_VERSION}'
        )
        raise PolicyError(msg)
    # gvkWithDefaults fills an empty kind from the decode target, so only a wrong one fails.
    if kind not in ("", "Policy"):
        msg = f'kind: Unsupported value: "{kind}": no kind "{kind}" is registered for {API_VERSION}'
        raise PolicyError(msg)


def _decode_resources(value: Any, path: str, decoder: _Decoder) -> tuple[GroupResources, ...]:
    items = []
    for i, item in enumerate(decoder.items(value, path)):
        item_path = f"{path}[{i}]"
        raw = decoder.mapping(item, item_path)
        decoder.known(raw, GROUP_RESOURCE_KEYS, item_path)
        items.append(
            GroupResources(
                group=decoder.string(raw.get("group"), f"{item_path}.group"),
                resources=decoder.strings(raw.get("resources"), f"{item_path}.resources"),
                resource_names=decoder.strings(
                    raw.get("resourceNames"), f"{item_path}.resourceNames"
                ),
            )
        )
    return tuple(items)


def _decode_rule(value: Any, path: str, decoder: _Decoder) -> tuple[PolicyRule, tuple[str, ...]]:
    raw = decoder.mapping(value, path)
    decoder.known(raw, RULE_KEYS, path)
    stages = decoder.strings(raw.get("omitStages"), f"{path}.omitStages")
    rule = PolicyRule(
        level=decoder.string(raw.get("level"), f"{path}.level"),
        users=decoder.strings(raw.get("users"), f"{path}.users"),
        user_groups=decoder.strings(raw.get("userGroups"), f"{path}.userGroups"),
        verbs=decoder.strings(raw.get("verbs"), f"{path}.verbs"),
        resources=_decode_resources(raw.get("resources"), f"{path}.resources", decoder),
        namespaces=decoder.strings(raw.get("namespaces"), f"{path}.namespaces"),
        non_resource_urls=decoder.strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs"),
        omit_stages=frozenset(stages),
        omit_managed_fields=decoder.boolean(
            raw.get("omitManagedFields"), f"{path}.omitManagedFields"
        ),
    )
    return rule, stages


def _validate_level(level: str, path: str) -> list[str]:
    if level in LEVELS:
        return []
    if level == "":
        return [f"{path}: Required value"]
    supported = ", ".join(_quote(v) for v in LEVELS)
    return [f"{path}: Unsupported value: {_quote(level)}: supported values: {supported}"]


def _validate_stages(stages: tuple[str, ...], path: str) -> list[str]:
    return [
        f"{path}[{i}]: Invalid value: {_quote(stage)}: allowed stages are {','.join(STAGES)}"
        for i, stage in enumerate(stages)
        if stage not in VALID_STAGES
    ]


def _validate_urls(urls: tuple[str, ...], path: str) -> list[str]:
    errors = []
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errors.append(
                f"{path}[{i}]: Invalid value: {_quote(url)}: "
                "non-resource URL rules must begin with a '/' character"
            )
        if url != "" and "*" in url[:-1]:
            errors.append(
                f"{path}[{i}]: Invalid value: {_quote(url)}: "
                "non-resource URL wildcards '*' must be the final character of the rule"
            )
    return errors


def _validate_resources(resources: tuple[GroupResources, ...], path: str) -> list[str]:
    errors = []
    for item in resources:
        if item.group not in ("", "*"):
            problems = []
            if len(item.group) > 253:
                problems.append("must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.fullmatch(item.group):
                problems.append(_DNS1123_MESSAGE)
            if problems:
                errors.append(
                    f"{path}.group: Invalid value: {_quote(item.group)}: {','.join(problems)}"
                )
        if item.resource_names and not item.resources:
            names = "[" + " ".join(item.resource_names) + "]"
            errors.append(
                f"{path}.resourceNames: Invalid value: {names}: "
                "using resourceNames requires at least one resource"
            )
    return errors


def _validate_rule(rule: PolicyRule, stages: tuple[str, ...], path: str) -> list[str]:
    errors = _validate_level(rule.level, f"{path}.level")
    errors += _validate_urls(rule.non_resource_urls, f"{path}.nonResourceURLs")
    errors += _validate_resources(rule.resources, f"{path}.resources")
    errors += _validate_stages(stages, f"{path}.omitStages")
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        urls = "[" + " ".join(rule.non_resource_urls) + "]"
        errors.append(
            f"{path}.nonResourceURLs: Invalid value: {urls}: "
            "rules cannot apply to both regular resources and non-resource URLs"
        )
    return errors


def parse_policy(text: str) -> ParsedPolicy:
    """Decode and validate policy text; raise ``PolicyError`` as the apiserver would refuse it."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        msg = f"failed decoding: not valid YAML or JSON: {err}".replace("\n", " ")
        raise PolicyError(msg) from err
    decoder = _Decoder()
    if doc is None:
        msg = (
            f"apiVersion: Required value: the policy is empty; it needs 'apiVersion: {API_VERSION}'"
        )
        raise PolicyError(msg)
    top = decoder.mapping(doc, "")
    _check_header(top, decoder)
    decoder.known(top, POLICY_KEYS, "")
    decoder.mapping(top.get("metadata"), "metadata")
    policy_stages = decoder.strings(top.get("omitStages"), "omitStages")
    omit_managed = decoder.boolean(top.get("omitManagedFields"), "omitManagedFields")
    decoded = [
        _decode_rule(item, f"rules[{i}]", decoder)
        for i, item in enumerate(decoder.items(top.get("rules"), "rules"))
    ]
    errors = _validate_stages(policy_stages, "omitStages")
    for i, (rule, stages) in enumerate(decoded):
        errors += _validate_rule(rule, stages, f"rules[{i}]")
    if errors:
        raise PolicyError("; ".join(errors))
    if not decoded:
        msg = "rules: Required value: loaded illegal policy with 0 rules"
        raise PolicyError(msg)
    return ParsedPolicy(
        rules=tuple(rule for rule, _ in decoded),
        omit_stages=frozenset(policy_stages),
        omit_managed_fields=bool(omit_managed),
        unknown_fields=tuple(decoder.unknown),
    )
