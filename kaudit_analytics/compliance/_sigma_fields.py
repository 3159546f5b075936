"""The Sigma field mapping (``sigma_fields.yaml``) as typed targets; private to ``sigma``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class Col:
    """A column of the events table."""

    name: str


@dataclass(frozen=True)
class Json:
    """A JSON path (``$.spec.hostNetwork``) into a raw-JSON body column."""

    column: str
    path: str


@dataclass(frozen=True)
class AnyKey:
    """A key anywhere in a raw-JSON body."""

    column: str
    key: str


@dataclass(frozen=True)
class KeyValue:
    """One key of a list[struct{key, <value>}] column (``annotations``, ``user_extra``)."""

    column: str
    key: str
    value_field: str


@dataclass(frozen=True)
class NotKept:
    """A field the lake does not keep: rules using it are refused, with a reason."""

    reason: str


Target = Col | Json | AnyKey | KeyValue | NotKept


class UnmappedFieldError(KeyError):
    """A rule names a field the events table does not have."""


@cache
def _mapping() -> dict[str, Any]:
    text = resources.files("kaudit_analytics.compliance").joinpath("sigma_fields.yaml")
    loaded = yaml.safe_load(text.read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _target(field: str, spec: dict[str, str]) -> Target:
    if "column" in spec:
        return Col(spec["column"])
    if "key_anywhere" in spec:
        return AnyKey(spec["key_anywhere"], field)
    return NotKept(spec["not_kept"])


def resolve(field: str) -> Target:
    """The target of one Sigma field name; ``UnmappedFieldError`` with the reason."""
    mapping = _mapping()
    if field in mapping["fields"]:
        return _target(field, mapping["fields"][field])
    for prefix, spec in mapping["prefixes"].items():
        if field.startswith(prefix) and len(field) > len(prefix):
            rest = field[len(prefix) :]
            if "json" in spec:
                return Json(spec["json"], "$." + rest)
            return KeyValue(spec["key_value"], rest, spec["value_field"])
    if field in mapping["pass_through"]:
        return Col(field)
    near = difflib.get_close_matches(field, [*mapping["fields"], *mapping["pass_through"]], n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    msg = (
        f"field {field!r} is not a Kubernetes audit event field that kaudit maps "
        f"(see compliance/sigma_fields.yaml){hint}"
    )
    raise UnmappedFieldError(msg)
