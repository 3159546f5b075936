"""Flatten audit events from JSON text into the events table, vectorised in DuckDB.

DuckDB's JSON reader parses a batch of lines on both cores at once and tells a bad line from a good
one without aborting the batch; measured against polars-only parsing in BENCHMARKS.md. Every
mapping decision (v1beta1 and v1alpha1 fields, core group, webhook EventLists) is in the SQL below,
next to the field it concerns.
"""

from __future__ import annotations

import json
from typing import Final

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kaudit_analytics import schema as s
from kaudit_analytics.ingestion import formats as _formats

# What json_transform extracts; everything else in the event is ignored. Timestamps stay text
# here so that an unparsable one becomes a null we can name, not an error for the whole batch.
_EVENT_SHAPE: Final = json.dumps(
    {
        "kind": "VARCHAR",
        "level": "VARCHAR",
        "auditID": "VARCHAR",
        "stage": "VARCHAR",
        "requestURI": "VARCHAR",
        "verb": "VARCHAR",
        "user": {
            "username": "VARCHAR",
            "uid": "VARCHAR",
            "groups": ["VARCHAR"],
            "extra": "MAP(VARCHAR, VARCHAR[])",
        },
        "impersonatedUser": {"username": "VARCHAR", "groups": ["VARCHAR"]},
        "sourceIPs": ["VARCHAR"],
        "userAgent": "VARCHAR",
        "objectRef": {
            "resource": "VARCHAR",
            "namespace": "VARCHAR",
            "name": "VARCHAR",
            "uid": "VARCHAR",
            "apiGroup": "VARCHAR",
            "apiVersion": "VARCHAR",
            "resourceVersion": "VARCHAR",
            "subresource": "VARCHAR",
        },
        "responseStatus": {
            "code": "INTEGER",
            "status": "VARCHAR",
            "reason": "VARCHAR",
            "message": "VARCHAR",
        },
        "requestObject": "JSON",
        "responseObject": "JSON",
        "requestReceivedTimestamp": "VARCHAR",
        "stageTimestamp": "VARCHAR",
        "timestamp": "VARCHAR",
        "annotations": "MAP(VARCHAR, VARCHAR)",
    }
)

_STAGES_SQL: Final = ", ".join(f"'{stage}'" for stage in s.STAGES)
_LEVELS_SQL: Final = ", ".join(f"'{level}'" for level in s.LEVELS)

# Go's encoding/json writes <, >, & and U+2028/9 as \u escapes; DuckDB writes them raw. When the
# source line has none of them raw, it was written by Go (the apiserver), so putting the escapes
# back gives the body exactly as logged, byte for byte; otherwise the body is left as DuckDB
# wrote it (JSON-equal to the source). A line without any \u cannot need the fix: that one search
# spares most lines the five of has_escapable, and their bodies five more (a tenth of a
# body-heavy parse). Five substring searches cost a tenth of one regular expression.
_MACROS: Final = r"""
CREATE OR REPLACE MACRO has_escapable(s) AS contains(s, '<') OR contains(s, '>') OR contains(s, '&')
    OR contains(s, chr(8232)) OR contains(s, chr(8233));
CREATE OR REPLACE MACRO needs_go_escapes(line) AS
    CASE WHEN contains(line, '\u') THEN NOT has_escapable(line) ELSE false END;
CREATE OR REPLACE MACRO as_logged(body, fix) AS CASE
    WHEN fix AND has_escapable(body::VARCHAR) THEN
    replace(replace(replace(replace(replace(body::VARCHAR,
        '&', '\u0026'), '<', '\u003c'), '>', '\u003e'), chr(8232), '\u2028'), chr(8233), '\u2029')
    ELSE body::VARCHAR END;
-- A body that embeds a Secret. The search for the rarer 'S' first: scanning for '"', the most
-- common byte in JSON, cost a twentieth of a body-heavy parse.
CREATE OR REPLACE MACRO has_secret(body) AS
    CASE WHEN contains(body, 'Secret"') THEN contains(body, '"kind":"Secret"') ELSE false END;
-- The metadata.managedFields that omitManagedFields drops (apiserver/pkg/audit/request.go,
-- copyWithoutManagedFields): the object's own, every item's of a list and every row object's of
-- a meta.k8s.io Table (what kubectl get reads). Each costs its JSON, its key and a comma, but for
-- the comma when it is all the metadata there is (the reviews: SubjectAccessReview, TokenReview
-- … have no name); the name fields tell that without parsing the metadata again.
CREATE OR REPLACE MACRO managed_fields(body) AS json_transform(body,
    '{"kind": "VARCHAR",
      "metadata": {"managedFields": "JSON", "name": "VARCHAR", "generateName": "VARCHAR",
                   "namespace": "VARCHAR", "uid": "VARCHAR", "creationTimestamp": "VARCHAR"},
      "items": [{"metadata": {"managedFields": "JSON"}}],
      "rows": [{"object": {"metadata": {"managedFields": "JSON"}}}]}');
CREATE OR REPLACE MACRO mf_len(mf, fix) AS strlen(as_logged(mf, fix)) + 17;
CREATE OR REPLACE MACRO mf_bytes(mf, fix) AS
    coalesce(mf_len(mf.metadata.managedFields, fix) - CASE WHEN mf.metadata.name IS NULL
        AND mf.metadata.generateName IS NULL AND mf.metadata.namespace IS NULL
        AND mf.metadata.uid IS NULL AND mf.metadata.creationTimestamp IS NULL THEN 1 ELSE 0 END, 0)
    + coalesce(list_sum(list_transform(
        mf.items, lambda i: mf_len(i.metadata.managedFields, fix))), 0)
    + CASE WHEN mf.kind = 'Table' THEN coalesce(list_sum(list_transform(
        mf.rows, lambda r: mf_len(r.object.metadata.managedFields, fix))), 0) ELSE 0 END;
"""

# One row per input line. `ok` rows become events; the rest carry a reason and are quarantined.
_EVENTS_SQL: Final = f"""
WITH parsed AS (
    -- The event's fields as columns: a reference to a field of the one wide struct bound its
    -- whole type again (binding the query took 16 ms a batch, now 11).
    SELECT line, nbytes, text, fmt, lossy, source, e IS NULL AS unparsed, e.*
    FROM (SELECT line, nbytes, text, fmt, lossy, source, {{transform}} AS e FROM lines WHERE keep)
), flat AS (
    SELECT *,
        requestObject IS NOT NULL OR responseObject IS NOT NULL AS has_body,
        -- json_transform reads any JSON value into the struct; only an object has an auditID,
        -- so the text (copied by ltrim) is looked at only for the rare rows without one.
        CASE WHEN unparsed THEN NULL
             WHEN auditID IS NOT NULL OR starts_with(ltrim(text), '{{') THEN 'OBJECT'
             ELSE 'VALUE' END AS jtype,
        -- Only bodies need the escape check; skipping it elsewhere saves a pass over the text.
        CASE WHEN has_body THEN needs_go_escapes(text) END AS fix,
        -- A body is parsed once more, for its managedFields (one json_transform per body:
        -- json_extract per path parsed it once per path).
        managed_fields(requestObject) AS request_mf,
        managed_fields(responseObject) AS response_mf,
        auditID AS audit_id,
        coalesce(try_cast(requestReceivedTimestamp AS TIMESTAMPTZ),
                 try_cast("timestamp" AS TIMESTAMPTZ)) AS request_ts,
        coalesce(try_cast(stageTimestamp AS TIMESTAMPTZ),
                 try_cast("timestamp" AS TIMESTAMPTZ)) AS stage_ts
    FROM parsed
), checked AS (
    SELECT *,
        -- Each body's text once: referring to as_logged() twice evaluated it twice.
        as_logged(requestObject, fix) AS request_text,
        as_logged(responseObject, fix) AS response_text,
        -- What is wrong with a line, decided once: the text and the detail follow from it.
        CASE
            WHEN jtype IS NULL THEN 'invalid-json'
            WHEN jtype <> 'OBJECT' THEN 'not-an-event'
            WHEN audit_id IS NULL OR stage IS NULL OR verb IS NULL OR request_ts IS NULL
                THEN 'missing-fields'
            WHEN stage NOT IN ({_STAGES_SQL}) THEN 'unknown-stage'
            WHEN level IS NOT NULL AND level NOT IN ({_LEVELS_SQL}) THEN 'unknown-level'
        END AS problem
    FROM flat
)
SELECT
    line,
    -- Which day partition the event goes to; and whether its bodies may hold a secret value
    -- (Secrets, token reviews and requests, or any body embedding a Secret), for redaction.
    request_ts::DATE AS date,
    (objectRef.resource IN ('secrets', 'tokenreviews')
        OR objectRef.resource = 'serviceaccounts' AND objectRef.subresource = 'token'
        OR has_secret(requestObject) OR has_secret(responseObject)) IS TRUE
      AND has_body AS risky,
    -- The text goes back only for lines that will be quarantined: copying it all costs time.
    CASE WHEN problem IS NOT NULL THEN text END AS text,
    problem,
    CASE problem
        WHEN 'invalid-json' THEN 'not valid JSON'
        WHEN 'not-an-event' THEN 'a JSON value that is not an object'
        -- Absent fields and present but unusable ones are named apart: a field that is in
        -- the record is never called missing.
        WHEN 'missing-fields' THEN concat_ws('; ',
            'missing required field(s): ' || nullif(concat_ws(', ',
                CASE WHEN NOT json_exists(text, '$.auditID') THEN 'auditID' END,
                CASE WHEN NOT json_exists(text, '$.stage') THEN 'stage' END,
                CASE WHEN NOT json_exists(text, '$.verb') THEN 'verb' END,
                CASE WHEN NOT json_exists(text, '$.requestReceivedTimestamp')
                      AND NOT json_exists(text, '$.timestamp')
                    THEN 'requestReceivedTimestamp' END), ''),
            'unusable: ' || nullif(concat_ws(', ',
                CASE WHEN audit_id IS NULL AND json_exists(text, '$.auditID')
                    THEN 'auditID is ' || json_type(text, '$.auditID') END,
                CASE WHEN stage IS NULL AND json_exists(text, '$.stage')
                    THEN 'stage is ' || json_type(text, '$.stage') END,
                CASE WHEN verb IS NULL AND json_exists(text, '$.verb')
                    THEN 'verb is ' || json_type(text, '$.verb') END,
                CASE WHEN request_ts IS NULL AND (json_exists(text, '$.requestReceivedTimestamp')
                          OR json_exists(text, '$.timestamp'))
                    THEN 'requestReceivedTimestamp ' || coalesce(
                        text->>'$.requestReceivedTimestamp', text->>'$.timestamp', 'null')
                        || ' is not a time' END), ''),
            CASE WHEN audit_id IS NULL AND stage IS NULL AND verb IS NULL
                THEN 'its fields: ' || array_to_string(json_keys(text), ', ') END)
        WHEN 'unknown-stage' THEN 'unknown stage ' || stage
        WHEN 'unknown-level' THEN 'unknown level ' || level
    END AS detail,
    audit_id,
    -- As the events table's enums; a row with another stage or level is quarantined above.
    try_cast(stage AS kaudit_stage) AS stage,
    try_cast(level AS kaudit_level) AS level,
    verb,
    requestURI AS request_uri,
    "user".username AS "user",
    "user".uid AS user_uid,
    "user".groups AS groups,
    list_transform(map_entries("user".extra),
                   lambda x: struct_pack(key := x.key, "values" := x.value)) AS user_extra,
    impersonatedUser.username AS impersonated_user,
    impersonatedUser.groups AS impersonated_groups,
    sourceIPs AS source_ips,
    userAgent AS user_agent,
    -- Core objects have no apiGroup in the event ("" in the table); v1alpha1 and some exports
    -- put "group/version" in apiVersion alone, with "/v1" for core.
    CASE
        WHEN objectRef IS NULL OR objectRef.resource IS NULL AND objectRef.name IS NULL
             AND objectRef.apiVersion IS NULL THEN NULL
        WHEN objectRef.apiGroup IS NOT NULL THEN objectRef.apiGroup
        WHEN contains(objectRef.apiVersion, '/')
            THEN regexp_extract(objectRef.apiVersion, '^(.*)/[^/]*$', 1)
        ELSE ''
    END AS api_group,
    CASE
        WHEN objectRef.apiGroup IS NULL AND contains(objectRef.apiVersion, '/')
            THEN regexp_extract(objectRef.apiVersion, '/([^/]*)$', 1)
        ELSE objectRef.apiVersion
    END AS api_version,
    objectRef.resource AS resource,
    objectRef.subresource AS subresource,
    objectRef.namespace AS namespace,
    objectRef.name AS name,
    objectRef.uid AS object_uid,
    objectRef.resourceVersion AS resource_version,
    try_cast(responseStatus.code AS SMALLINT) AS code,
    responseStatus.status AS status,
    responseStatus.reason AS reason,
    responseStatus.message AS message,
    request_ts,
    stage_ts,
    map_entries(annotations) AS annotations,
    annotations['authorization.k8s.io/decision'] AS authz_decision,
    annotations['authorization.k8s.io/reason'] AS authz_reason,
    request_text AS request_object,
    response_text AS response_object,
    nbytes::INTEGER AS event_bytes,
    strlen(request_text)::INTEGER AS request_object_bytes,
    strlen(response_text)::INTEGER AS response_object_bytes,
    -- A patch is logged as the client sent it (LogRequestPatch): nothing is dropped from it.
    CASE WHEN has_body THEN CASE WHEN verb = 'patch' THEN 0 ELSE mf_bytes(request_mf, fix) END
        + mf_bytes(response_mf, fix) END::INTEGER AS managed_fields_bytes,
    source AS source_file,
    line AS source_line,
    fmt AS source_format,
    lossy AS lossy_fields,
    coalesce(annotations['audit.k8s.io/truncated'] = 'true', false) AS truncated
FROM checked
"""

# Parsing assumes every line is JSON: checking first with json_valid() doubles the cost of the
# parse (measured 0.13 against 0.10 CPU-s per 34 k lines). When a batch does hold a broken line,
# DuckDB refuses the whole query and the batch is parsed again with the check, line by line.
_FAST_SQL: Final = _EVENTS_SQL.replace("{transform}", f"json_transform(text, '{_EVENT_SHAPE}')")
_SAFE_SQL: Final = _EVENTS_SQL.replace(
    "{transform}", f"CASE WHEN json_valid(text) THEN json_transform(text, '{_EVENT_SHAPE}') END"
)

_ENUMS_SQL: Final = f"""
CREATE TYPE kaudit_stage AS ENUM ({_STAGES_SQL});
CREATE TYPE kaudit_level AS ENUM ({_LEVELS_SQL});
"""

# DuckDB hands its enums to Arrow as plain dictionaries; this field metadata is what makes polars
# read them back as the events table's Enum types, so the lake stays one schema for every reader.
_ENUM_FIELDS: Final = {
    name: pl.DataFrame(schema={name: s.FILE_SCHEMA[name]})
    .to_arrow(compat_level=pl.CompatLevel.oldest())
    .schema.field(name)
    .metadata
    for name in (s.STAGE, s.LEVEL)
}

#: Columns of a parsed batch besides the events table's: the line number, the partition day,
#: whether redaction must look at the row, and for a bad line its text and what is wrong.
EXTRA_COLUMNS: Final = ("line", s.DATE, "risky", "text", "problem", "detail")


class Parser:
    """A DuckDB connection set up once per ingest and reused for every batch."""

    def __init__(self, threads: int | None = None) -> None:
        # Rows carry their line number, so DuckDB may return them in any order (faster).
        config: dict[str, str | bool | int | float | list[str]] = {
            "preserve_insertion_order": False
        }
        if threads is not None:
            config["threads"] = threads
        self._con = duckdb.connect(config=config)
        self._con.execute("SET TimeZone = 'UTC'")
        # Macros and types are created once per connection, not once per batch.
        self._con.execute(_MACROS)
        self._con.execute(_ENUMS_SQL)
        self._con.execute(_formats.MACROS_SQL)
        self._queries: dict[str, duckdb.DuckDBPyRelation] = {}

    def close(self) -> None:
        self._con.close()

    def _query(self, name: str, sql: str) -> duckdb.DuckDBPyRelation:
        """The query as a relation made once: each run binds it to the current ``lines``.

        ``con.sql(...).to_arrow_table()`` binds the query twice, and binding this one costs as
        much as parsing a few thousand lines (6 of 20 ms a batch saved, 4 % of a parse).
        """
        if name not in self._queries:
            self._queries[name] = self._con.sql(sql)
        return self._queries[name]

    def normalize(self, line: pa.Array, text: pa.Array) -> pa.Table:
        """Rewrite lines of other formats as native event lines (see ``_formats``)."""
        self._con.register("failed", pa.table({"line": line, "text": text}))
        try:
            table: pa.Table = self._con.sql(_formats.NORMALIZE_SQL).to_arrow_table()
        finally:
            self._con.unregister("failed")
        return table

    def parse(self, table: pa.Table, source: str | None = None) -> pa.Table:
        """Parse a batch of lines: one output row per kept line, ``problem`` set on bad ones.

        ``table`` has the columns ``line``, ``nbytes``, ``keep``, ``text``, ``fmt``, ``lossy``
        and, when ``source`` is None, ``source`` (lines of several files parsed at once);
        the result has the events table's columns (``FILE_SCHEMA``, ``source_file`` set to
        the source) after ``EXTRA_COLUMNS``. It stays in Arrow: the loader writes it as is.
        """
        # Several record batches let DuckDB parse on every core.
        table = pa.Table.from_batches(
            table.to_batches(max_chunksize=max(table.num_rows // 8, 1024)), table.schema
        )
        if source is not None:
            table = table.append_column("source", pa.repeat(pa.scalar(source), table.num_rows))
        self._con.register("lines", table)
        try:
            try:
                parsed = self._query("fast", _FAST_SQL).to_arrow_table()
            except duckdb.InvalidInputException:
                parsed = self._query("safe", _SAFE_SQL).to_arrow_table()
        finally:
            self._con.unregister("lines")
        schema = parsed.schema
        for name, metadata in _ENUM_FIELDS.items():
            at = schema.get_field_index(name)
            schema = schema.set(at, schema.field(at).with_metadata(metadata))
        return pa.Table.from_arrays(parsed.columns, schema=schema)


def to_problems(parsed: pa.Table) -> pa.Table | None:
    """The bad rows of a parsed batch (``line``, ``problem``, ``detail``, ``text``), or None."""
    problem = parsed["problem"]
    if problem.null_count == len(problem):
        return None
    return parsed.filter(pc.is_valid(problem)).select(["line", "problem", "detail", "text"])


def to_events(parsed: pa.Table) -> pa.Table:
    """The good rows of a parsed batch: the events table's columns, plus ``date`` and ``risky``."""
    good = parsed.select([s.DATE, "risky", *s.FILE_SCHEMA.names()])
    problem = parsed["problem"]
    if problem.null_count == len(problem):
        return good  # the common case: no copy
    return good.filter(pc.is_null(problem))
