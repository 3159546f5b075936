"""The events table: one schema that every writer, reader and test uses.

Column names are module constants so that a rename is one edit; analyses write
``pl.col(USER)`` rather than ``pl.col("user")``. ``AUDIT_SCHEMA`` is the table as
``scan()`` returns it, with the two hive partition columns first; ``FILE_SCHEMA`` is what
a Parquet file in the lake holds (the partition values live in its folder names).
"""

from __future__ import annotations

import polars as pl

__all__ = [
    "ANNOTATIONS",
    "API_GROUP",
    "API_VERSION",
    "AUDIT_ID",
    "AUDIT_SCHEMA",
    "AUTHZ_DECISION",
    "AUTHZ_REASON",
    "CLUSTER",
    "CODE",
    "DATE",
    "EVENT_BYTES",
    "FILE_SCHEMA",
    "GROUPS",
    "IMPERSONATED_GROUPS",
    "IMPERSONATED_USER",
    "LEVEL",
    "LEVELS",
    "LOSSY_FIELDS",
    "MANAGED_FIELDS_BYTES",
    "MESSAGE",
    "NAME",
    "NAMESPACE",
    "OBJECT_UID",
    "PARTITION_SCHEMA",
    "QUARANTINE_SCHEMA",
    "REASON",
    "REDACTED",
    "REQUEST_OBJECT",
    "REQUEST_OBJECT_BYTES",
    "REQUEST_TS",
    "REQUEST_URI",
    "RESOURCE",
    "RESOURCE_VERSION",
    "RESPONSE_OBJECT",
    "RESPONSE_OBJECT_BYTES",
    "SOURCE_FILE",
    "SOURCE_FORMAT",
    "SOURCE_IPS",
    "SOURCE_LINE",
    "STAGE",
    "STAGES",
    "STAGE_TS",
    "STATUS",
    "SUBRESOURCE",
    "TRUNCATED",
    "USER",
    "USER_AGENT",
    "USER_EXTRA",
    "USER_UID",
    "VERB",
    "Level",
    "SchemaError",
    "Stage",
    "conform",
    "empty_events",
]

STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
LEVELS: tuple[str, ...] = ("None", "Metadata", "Request", "RequestResponse")
#: The verbs of resource requests, reads first (the order tables and charts show them in).
VERBS: tuple[str, ...] = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
)
#: Non-resource requests (``/healthz``, ``/apis``…) are logged with their lower-cased HTTP method.
HTTP_VERBS: tuple[str, ...] = ("get", "head", "options", "post", "put", "patch", "delete")
Stage = pl.Enum(STAGES)
Level = pl.Enum(LEVELS)

#: What replaces a secret value at load time (keys are kept, values are gone).
REDACTED = "<redacted by kaudit>"

CLUSTER = "cluster"
DATE = "date"
AUDIT_ID = "audit_id"
STAGE = "stage"
LEVEL = "level"
VERB = "verb"
REQUEST_URI = "request_uri"
USER = "user"
USER_UID = "user_uid"
GROUPS = "groups"
USER_EXTRA = "user_extra"
IMPERSONATED_USER = "impersonated_user"
IMPERSONATED_GROUPS = "impersonated_groups"
SOURCE_IPS = "source_ips"
USER_AGENT = "user_agent"
API_GROUP = "api_group"
API_VERSION = "api_version"
RESOURCE = "resource"
SUBRESOURCE = "subresource"
NAMESPACE = "namespace"
NAME = "name"
OBJECT_UID = "object_uid"
RESOURCE_VERSION = "resource_version"
CODE = "code"
STATUS = "status"
REASON = "reason"
MESSAGE = "message"
REQUEST_TS = "request_ts"
STAGE_TS = "stage_ts"
ANNOTATIONS = "annotations"
AUTHZ_DECISION = "authz_decision"
AUTHZ_REASON = "authz_reason"
REQUEST_OBJECT = "request_object"
RESPONSE_OBJECT = "response_object"
EVENT_BYTES = "event_bytes"
REQUEST_OBJECT_BYTES = "request_object_bytes"
RESPONSE_OBJECT_BYTES = "response_object_bytes"
MANAGED_FIELDS_BYTES = "managed_fields_bytes"
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"
SOURCE_FORMAT = "source_format"
LOSSY_FIELDS = "lossy_fields"
TRUNCATED = "truncated"

_TS = pl.Datetime("us", "UTC")
_STRINGS = pl.List(pl.String)

PARTITION_SCHEMA = pl.Schema({CLUSTER: pl.String, DATE: pl.Date})

FILE_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # polars' stubs reject Enum instances in a dict literal
        AUDIT_ID: pl.String,
        STAGE: Stage,
        LEVEL: Level,
        VERB: pl.String,
        REQUEST_URI: pl.String,
        USER: pl.String,
        USER_UID: pl.String,
        GROUPS: _STRINGS,
        USER_EXTRA: pl.List(pl.Struct({"key": pl.String, "values": _STRINGS})),
        IMPERSONATED_USER: pl.String,
        IMPERSONATED_GROUPS: _STRINGS,
        SOURCE_IPS: _STRINGS,
        USER_AGENT: pl.String,
        API_GROUP: pl.String,
        API_VERSION: pl.String,
        RESOURCE: pl.String,
        SUBRESOURCE: pl.String,
        NAMESPACE: pl.String,
        NAME: pl.String,
        OBJECT_UID: pl.String,
        RESOURCE_VERSION: pl.String,
        CODE: pl.Int16,
        STATUS: pl.String,
        REASON: pl.String,
        MESSAGE: pl.String,
        REQUEST_TS: _TS,
        STAGE_TS: _TS,
        ANNOTATIONS: pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
        AUTHZ_DECISION: pl.String,
        AUTHZ_REASON: pl.String,
        REQUEST_OBJECT: pl.String,
        RESPONSE_OBJECT: pl.String,
        EVENT_BYTES: pl.Int64,
        REQUEST_OBJECT_BYTES: pl.Int64,
        RESPONSE_OBJECT_BYTES: pl.Int64,
        MANAGED_FIELDS_BYTES: pl.Int64,
        SOURCE_FILE: pl.String,
        SOURCE_LINE: pl.Int64,
        SOURCE_FORMAT: pl.String,
        LOSSY_FIELDS: _STRINGS,
        TRUNCATED: pl.Boolean,
    }
)

AUDIT_SCHEMA = pl.Schema({**PARTITION_SCHEMA, **FILE_SCHEMA})

#: One row per input line (or file) that could not become an event: which cluster it was loaded
#: for, where it is (source, line number, byte offset of the line in the decompressed source),
#: why, the line's bytes, whole, and when it was quarantined (what retention goes by).
QUARANTINE_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # polars' stubs reject dtype instances in a dict literal
        "quarantined_at": _TS,
        "cluster": pl.String,
        "source": pl.String,
        "line": pl.Int64,
        "offset": pl.Int64,
        "reason": pl.String,
        "detail": pl.String,
        "raw": pl.Binary,
    }
)


class SchemaError(ValueError):
    """A frame does not have the columns of the events table."""


def conform(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Select the events table's columns in order and cast them to ``AUDIT_SCHEMA``.

    Raises
    ------
    SchemaError
        When a column of the events table is missing, naming every missing column.

    Examples
    --------
    >>> import polars as pl
    >>> from kaudit_analytics.schema import conform, empty_events
    >>> conform(empty_events().lazy()).collect().shape
    (0, 43)
    """
    names = frame.collect_schema().names()
    missing = [name for name in AUDIT_SCHEMA if name not in names]
    if missing:
        msg = f"not an events table: missing column(s) {', '.join(missing)}"
        raise SchemaError(msg)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in AUDIT_SCHEMA.items())


def empty_events() -> pl.DataFrame:
    """An events table with no rows, typed by ``AUDIT_SCHEMA``.

    Examples
    --------
    >>> from kaudit_analytics.schema import empty_events
    >>> empty_events().width
    43
    """
    return pl.DataFrame(schema=AUDIT_SCHEMA)
