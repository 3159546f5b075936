"""Log formats other than one native event per line, rewritten as native event lines.

The loader parses every line as a native ``audit.k8s.io`` event first: that is what nearly every
line is, and it costs one parse. Only lines that fail that parse come here, where each known
wrapper is unpacked, in SQL, into native event lines that go through the same parse again:
webhook ``EventList``s, AKS diagnostic records (Event Hub ``records`` batches, string or object
``properties.log``, Log Analytics ``AKSAudit``/``AKSAuditAdmin`` rows), EKS CloudWatch Logs
exports and subscription deliveries, GKE Cloud Audit Logs entries, kube-audit-rest
``AdmissionReview`` lines, Panther-normalised records and partial events. Adding a format is one
more branch in ``NORMALIZE_SQL`` and one table in ``docs/formats.md``.

Every normalised row carries ``fmt`` (the ``source_format`` column) and ``lossy`` (the
``lossy_fields`` column: what the wrapper could not supply or what was inferred). A row with
``fmt = 'skip'`` and ``keep = false`` is a record that is not Kubernetes audit data (another
Azure or GCP log, another AKS category, a non-audit CloudWatch stream): its ``text`` says what it
was, the loader counts it and neither loads nor quarantines it.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from kaudit_analytics.ingestion import lines as _lines

#: What ``--format`` accepts: every line is then read as that format (no detection).
FORMATS: Final = ("native", "eventlist", "aks", "eks", "gke", "kube-audit-rest")

#: ``fmt`` of a normalised row that stands for a skipped record (not Kubernetes audit data).
SKIP: Final = "skip"

# A CloudWatch Logs export task writes "<RFC 3339 timestamp> <message>" lines.
_CLOUDWATCH_LINE: Final = re.compile(rb"^\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d) \{")

# Helpers of the query below, created once per parser connection (``_parse.Parser``).
MACROS_SQL: Final = r"""
CREATE OR REPLACE MACRO dyn(x) AS
    CASE WHEN json_type(x) = 'VARCHAR' THEN try((x->>'$')::JSON) ELSE x END;
CREATE OR REPLACE MACRO is_log_event(x) AS CASE
    -- Most records have no `message`: one lookup, and the others only for those that do.
    WHEN json_type(x, '$.message') = 'VARCHAR' THEN coalesce((x->'logStreamName') IS NOT NULL
        OR (x->'ingestionTime') IS NOT NULL OR (x->'eventId') IS NOT NULL
        OR json_type(x, '$.timestamp') IN ('BIGINT', 'UBIGINT', 'DOUBLE'), false)
    ELSE coalesce(json_type(x, '$."@message"') = 'VARCHAR', false) END;
CREATE OR REPLACE MACRO content_id(t) AS
    regexp_replace(md5(t), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5');
CREATE OR REPLACE MACRO grpc_to_http(c) AS CASE coalesce(c, 0)
    WHEN 0 THEN 200 WHEN 1 THEN 499 WHEN 2 THEN 500 WHEN 3 THEN 400 WHEN 4 THEN 504
    WHEN 5 THEN 404 WHEN 6 THEN 409 WHEN 7 THEN 403 WHEN 8 THEN 429 WHEN 9 THEN 400
    WHEN 10 THEN 409 WHEN 11 THEN 400 WHEN 12 THEN 501 WHEN 13 THEN 500 WHEN 14 THEN 503
    WHEN 15 THEN 500 WHEN 16 THEN 401 ELSE 500 END;
CREATE OR REPLACE MACRO exec_query(req) AS CASE
    WHEN json_type(req, '$.command') = 'ARRAY' THEN '?' || array_to_string(list_concat(
        list_transform(req->>'$.command[*]', lambda x: 'command=' || url_encode(x)),
        list_filter(['container=' || url_encode(req->>'container')], lambda x: x IS NOT NULL)), '&')
    ELSE '' END;
"""


# Input: table `failed` (line BIGINT, text VARCHAR). Output (the last statement): one row per
# event found, with the event as native JSON text, and one row per skipped record. Lines no
# branch recognises produce no row and stay quarantined. Stages, each a temporary table so
# that it is computed once whatever the planner does with references to it:
#   kaudit_src    one JSON value per line, or a CloudWatch export "<time> <message>" line
#   kaudit_elems  batches unpacked (Event Hub / Firehose `records`, EventList `items`)
#   kaudit_cwm    CloudWatch log events unpacked (deliveries, filter-log-events, Insights)
#   kaudit_cls    what each record is (aks, aks-table, gke, admission, event, skip-*)
# then `ev` maps every kind onto a native event, and the final SELECT fills what partial
# events lack and names it in `lossy`.
NORMALIZE_SQL: Final = r"""
CREATE OR REPLACE TEMP TABLE kaudit_src AS
SELECT line, text, fix, j, m.ts AS ts, m.msg AS msg FROM (
    SELECT *, CASE WHEN j IS NULL THEN regexp_extract(text,
            -- CloudWatch Logs export task: "<timestamp> <message>" text lines.
            '^\s*(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)) (.*?)\s*$', ['ts', 'msg'])
        END AS m
    FROM (SELECT line, text, needs_go_escapes(text) AS fix, try(text::JSON) AS j FROM failed)
);
CREATE OR REPLACE TEMP TABLE kaudit_elems AS
WITH cwl AS (
    SELECT line, fix, ts, msg FROM kaudit_src WHERE ts <> ''
), top AS (
    SELECT line, fix, j, rtrim(text, chr(13) || chr(10)) AS raw,
           NULL::VARCHAR AS wts, NULL::VARCHAR AS hint, false AS batched
    FROM kaudit_src WHERE j IS NOT NULL
    UNION ALL
    SELECT line, fix, try(msg::JSON), msg, ts, 'eks', false
    FROM cwl WHERE starts_with(msg, '{')
), elems AS (
    -- Batches: an Event Hub or Firehose `records` array, a webhook EventList's `items`.
    SELECT line, fix, e AS j, NULL::VARCHAR AS raw, wts, hint, true AS batched FROM (
        SELECT line, fix, wts, hint, unnest(j->'$.records[*]') AS e
        FROM top WHERE json_type(j, '$.records') = 'ARRAY')
    UNION ALL
    SELECT line, fix, e, NULL, wts, 'eventlist', true FROM (
        SELECT line, fix, wts, unnest(j->'$.items[*]') AS e
        FROM top WHERE json_type(j, '$.items') = 'ARRAY')
    UNION ALL
    SELECT * FROM top
    WHERE coalesce(json_type(j, '$.records'), '') <> 'ARRAY'
      AND coalesce(json_type(j, '$.items'), '') <> 'ARRAY'
)
SELECT * FROM elems;
CREATE OR REPLACE TEMP TABLE kaudit_cwm AS
WITH cwe AS (
    -- CloudWatch log events: a subscription delivery's `logEvents`, `aws logs
    -- filter-log-events` output's `events`, or one such event (or Insights row) per line.
    SELECT line, fix, batched, le, grp, stream FROM (
        -- The delivery's fields are read before the unnest: after it, DuckDB would parse
        -- the whole delivery again for each of its log events.
        SELECT line, fix, true AS batched, unnest(evs) AS le, grp, stream FROM (
            SELECT line, fix, j->'$.logEvents[*]' AS evs, j->>'logGroup' AS grp,
                   j->>'logStream' AS stream
            FROM kaudit_elems WHERE json_type(j, '$.logEvents') = 'ARRAY')
        UNION ALL
        SELECT line, fix, true, unnest(j->'$.events[*]'), NULL, NULL
        FROM kaudit_elems WHERE json_type(j, '$.events') = 'ARRAY')
    UNION ALL
    SELECT line, fix, batched, j, NULL, NULL FROM kaudit_elems WHERE is_log_event(j)
), cwm AS (
    SELECT line, fix, batched, msg, try(msg::JSON) AS j, grp,
           coalesce(stream, le->>'logStreamName', le->>'$."@logStream"') AS stream,
           CASE WHEN json_type(le, '$.timestamp') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
                THEN strftime(make_timestamp((le->>'timestamp')::DOUBLE::BIGINT * 1000),
                              '%Y-%m-%dT%H:%M:%S.%fZ')
                ELSE le->>'$."@timestamp"' END AS wts
    FROM (SELECT *, coalesce(le->>'message', le->>'$."@message"') AS msg FROM cwe)
)
SELECT * FROM cwm;
CREATE OR REPLACE TEMP TABLE kaudit_cls AS
WITH cand AS (
    SELECT line, fix, j, raw, wts, hint, batched FROM kaudit_elems
    WHERE NOT is_log_event(j)
      AND coalesce(json_type(j, '$.logEvents'), json_type(j, '$.events'), '') <> 'ARRAY'
    UNION ALL
    SELECT line, fix, j, msg, wts, 'eks', batched FROM kaudit_cwm WHERE json_type(j) = 'OBJECT'
)
SELECT *, CASE
        WHEN starts_with(cat, 'kube-audit') AND coalesce(j->'$.properties.log', j->'log_s')
             IS NOT NULL THEN 'aks'
        -- A kube-audit record without its event is broken audit data: quarantined, not skipped.
        WHEN cat IS NOT NULL AND NOT starts_with(cat, 'kube-audit')
             AND coalesce(j->'operationName', j->'resourceId', j->'properties',
             j->'OperationName', j->'ResourceId') IS NOT NULL THEN 'skip-azure'
        WHEN (j->'AuditId') IS NOT NULL OR (j->>'Type') IN ('AKSAudit', 'AKSAuditAdmin')
            THEN 'aks-table'
        WHEN json_type(j, '$.protoPayload') = 'OBJECT' THEN
            CASE WHEN coalesce(j->>'$.protoPayload.serviceName', j->>'serviceName') = 'k8s.io'
                      OR starts_with(j->>'$.protoPayload.methodName', 'io.k8s.')
                 THEN 'gke' ELSE 'skip-gcp' END
        WHEN (j->'logName') IS NOT NULL AND (j->'resource') IS NOT NULL THEN 'skip-gcp'
        WHEN (j->>'kind') = 'AdmissionReview' AND json_type(j, '$.request') = 'OBJECT'
            THEN 'admission'
        WHEN json_type(j) = 'OBJECT' AND ((j->>'kind') = 'Event' OR (j->'verb') IS NOT NULL
             OR (j->'objectRef') IS NOT NULL OR (j->'auditID') IS NOT NULL) THEN 'event'
    END AS kind
    FROM (SELECT *, lower(coalesce(j->>'category', j->>'Category')) AS cat,
                 strlen(coalesce(raw, as_logged(j, fix))) AS size FROM cand);
WITH aks AS (
    SELECT line, fix, batched, size, lg, wts,
           CASE WHEN json_type(lg) = 'VARCHAR' THEN rtrim(lg->>'$', chr(10)) END AS logged
    FROM (SELECT line, fix, batched, size,
                 coalesce(j->'$.properties.log', j->'log_s') AS lg,
                 coalesce(j->>'time', j->>'TimeGenerated', j->>'p_event_time') AS wts
          FROM kaudit_cls WHERE kind = 'aks')
), gke AS (
    SELECT *, len(m) >= 5 AS resourceful,
           len(p) >= 3 AND regexp_matches(p[2], '^v[0-9]') AS named,
           CASE WHEN p[3] = 'namespaces' THEN p[4] END AS ns,
           CASE WHEN p[3] = 'namespaces' AND len(p) >= 5 THEN p[5:] ELSE p[3:] END AS o
    FROM (SELECT *, (pp->>'resourceName') AS rn,
                 string_split(ltrim(pp->>'resourceName', '/'), '/') AS p,
                 string_split(pp->>'methodName', '.') AS m,
                 try_cast(coalesce(pp->>'$.status.code', j->>'$.status.code') AS INTEGER) AS grpc
          FROM (SELECT *, (j->'protoPayload') AS pp FROM kaudit_cls WHERE kind = 'gke'))
), ev AS (
    -- Every recognised record as (native event JSON, text it was logged as, what was lost).
    SELECT line, fix, batched, j AS e, raw AS logged, size, wts,
           -- A bare event is native whoever stored it: Panther's complete records never
           -- reach this query (their space-separated times parse natively), so its partial
           -- ones are not told apart either; `lossy` says what they lacked.
           coalesce(hint, 'native') AS fmt,
           CASE WHEN (j->'p_event_time') IS NOT NULL AND
                coalesce(j->>'requestReceivedTimestamp', j->>'timestamp') IS NULL
                THEN (j->>'p_event_time') ELSE wts END AS fallback_ts,
           []::VARCHAR[] AS lossy
    FROM kaudit_cls WHERE kind = 'event'
    UNION ALL
    -- AKS diagnostic record: the event is `properties.log`, a JSON string (as the apiserver
    -- wrote it) or an object; `time` (emit time) stands in for missing timestamps.
    SELECT line, fix, batched,
           coalesce(try(logged::JSON), CASE WHEN logged IS NULL THEN lg END),
           logged, coalesce(strlen(logged), size), wts, 'aks', wts, []
    FROM aks WHERE logged IS DISTINCT FROM 'skipped-too-big-size-object'
    UNION ALL
    -- Log Analytics AKSAudit / AKSAuditAdmin rows: PascalCase columns, dynamic columns as
    -- objects (JSON export) or JSON strings; a body too big to ingest is a marker string.
    SELECT line, fix, batched, json_object(
            'kind', 'Event', 'apiVersion', 'audit.k8s.io/v1',
            'level', j->>'Level', 'auditID', j->>'AuditId', 'stage', j->>'Stage',
            'requestURI', j->>'RequestUri', 'verb', j->>'Verb', 'user', dyn(j->'User'),
            'impersonatedUser', dyn(j->'ImpersonatedUser'), 'sourceIPs', dyn(j->'SourceIps'),
            'userAgent', j->>'UserAgent', 'objectRef', dyn(j->'ObjectRef'),
            'responseStatus', dyn(j->'ResponseStatus'), 'requestObject', dyn(j->'RequestObject'),
            'responseObject', dyn(j->'ResponseObject'),
            'requestReceivedTimestamp', j->>'RequestReceivedTime',
            'stageTimestamp', j->>'StageReceivedTime', 'annotations', dyn(j->'Annotations')),
           NULL, size, j->>'TimeGenerated', 'aks', j->>'TimeGenerated',
           list_filter([CASE WHEN (j->>'RequestObject') = 'skipped-too-big-size-object'
                             THEN 'request_object' END,
                        CASE WHEN (j->>'ResponseObject') = 'skipped-too-big-size-object'
                             THEN 'response_object' END], lambda x: x IS NOT NULL)
    FROM kaudit_cls WHERE kind = 'aks-table'
    UNION ALL
    -- GKE Cloud Audit Logs entry (also as Panther writes it: `at_sign_type`, `callerIP`).
    SELECT line, fix, batched, json_object(
            'kind', 'Event', 'apiVersion', 'audit.k8s.io/v1',
            'level', CASE WHEN (pp->'response') IS NOT NULL THEN 'RequestResponse'
                          WHEN (pp->'request') IS NOT NULL THEN 'Request' ELSE 'Metadata' END,
            'auditID', coalesce(j->>'$.operation.id', j->>'insertId'),
            'stage', 'ResponseComplete',
            'requestURI', CASE WHEN NOT resourceful AND rn IS NOT NULL THEN '/' || ltrim(rn, '/')
                               WHEN named AND p[1] = 'core'
                                   THEN '/api/' || array_to_string(p[2:], '/')
                               WHEN named THEN '/apis/' || array_to_string(p, '/') END
                          || exec_query(pp->'request'),
            'verb', m[-1],
            'user', json_object('username', pp->>'$.authenticationInfo.principalEmail'),
            'sourceIPs', json_array(coalesce(pp->>'$.requestMetadata.callerIp',
                                             pp->>'$.requestMetadata.callerIP')),
            'userAgent', pp->>'$.requestMetadata.callerSuppliedUserAgent',
            'objectRef', CASE WHEN resourceful AND named THEN json_object(
                    'apiGroup', CASE WHEN p[1] = 'core' THEN '' ELSE p[1] END, 'apiVersion', p[2],
                    'resource', o[1], 'name', o[2], 'subresource', o[3], 'namespace', ns)
                WHEN resourceful THEN json_object(
                    'apiGroup', CASE WHEN m[3] = 'core' THEN '' ELSE m[3] END, 'apiVersion', m[4],
                    'resource', m[5], 'subresource', CASE WHEN len(m) >= 7 THEN m[6] END) END,
            'responseStatus', json_object('code', grpc_to_http(grpc),
                                          'message', pp->>'$.status.message'),
            'requestReceivedTimestamp', coalesce(j->>'timestamp', pp->>'timestamp'),
            'annotations', json_merge_patch(
                CASE WHEN json_type(j, '$.labels') = 'OBJECT' THEN (j->'labels') ELSE '{}' END,
                json_object('kaudit.io/grpc-code', grpc::VARCHAR,
                            'kaudit.io/cluster', j->>'$.resource.labels.cluster_name')),
            'requestObject', pp->'request', 'responseObject', pp->'response'),
           NULL, size, NULL, 'gke', coalesce(j->>'p_event_time', j->>'receiveTimestamp'),
           list_filter(['groups', 'stage', 'stage_ts', 'level', 'code', 'request_uri',
                        CASE WHEN resourceful AND NOT named AND m[3] <> 'core'
                             THEN 'api_group' END], lambda x: x IS NOT NULL)
    FROM gke
    UNION ALL
    -- kube-audit-rest: the AdmissionReview a validating webhook received. It sees writes
    -- only (no reads), before the response, and carries no audit ID, source IP or agent.
    SELECT line, fix, batched, json_object(
            'kind', 'Event', 'apiVersion', 'audit.k8s.io/v1',
            'level', CASE WHEN (r->'object') IS NOT NULL AND json_type(r, '$.object') <> 'NULL'
                          THEN 'Request' ELSE 'Metadata' END,
            'auditID', r->>'uid', 'stage', 'ResponseComplete',
            'verb', CASE (r->>'operation') WHEN 'CONNECT' THEN 'create'
                                          ELSE lower(r->>'operation') END,
            'user', r->'userInfo',
            'objectRef', json_object(
                'apiGroup', r->>'$.resource.group', 'apiVersion', r->>'$.resource.version',
                'resource', r->>'$.resource.resource', 'subresource', r->>'subResource',
                'namespace', r->>'namespace', 'name', r->>'name',
                'uid', coalesce(r->>'$.object.metadata.uid', r->>'$.oldObject.metadata.uid')),
            'requestObject', CASE WHEN json_type(r, '$.object') <> 'NULL' THEN (r->'object') END,
            'requestReceivedTimestamp', j->>'requestReceivedTimestamp'),
           NULL, size, NULL, 'kube-audit-rest',
           -- Older kube-audit-rest writes no time: the newest managedFields entry of the
           -- object is when the apiserver last stamped it, to the second.
           list_max(list_concat(
               (r->>'$.object.metadata.managedFields[*].time'),
               (r->>'$.oldObject.metadata.managedFields[*].time'))),
           list_filter(['audit_id', 'stage', 'stage_ts', 'level', 'code', 'response_object',
                        'source_ips', 'user_agent', 'request_uri', 'reads',
                        CASE WHEN (r->>'operation') <> 'CREATE' THEN 'verb' END],
                       lambda x: x IS NOT NULL)
    FROM (SELECT *, (j->'request') AS r FROM kaudit_cls WHERE kind = 'admission')
    UNION ALL
    -- Anything else inside a batch goes back as it is: the parse quarantines it on its own.
    SELECT line, fix, batched, j, raw, size, wts, coalesce(hint, 'native'), NULL, []
    FROM kaudit_cls WHERE kind IS NULL AND batched
), filled AS (
    SELECT *, (e->>'auditID') IS NULL AS no_id, (e->>'stage') IS NULL AS no_stage,
           coalesce(e->>'requestReceivedTimestamp', e->>'timestamp') IS NULL AS no_ts,
           coalesce(e->>'stageTimestamp', fallback_ts) AS ts_fill
    FROM ev
)
-- Partial events (hand-trimmed samples, records whose wrapper dropped fields) get a
-- deterministic id derived from their text, the ResponseComplete stage and a stand-in request
-- time, each named in `lossy`. A record with no time at all, or no verb, is left as it is and
-- so quarantined; a record inside a batch is always returned, so that a bad one is quarantined
-- on its own and its neighbours load.
SELECT line, size::BIGINT AS nbytes, true AS keep,
       CASE WHEN (e->'verb') IS NOT NULL
                 AND (no_id OR no_stage OR no_ts AND ts_fill IS NOT NULL) THEN
           -- A null in a merge patch deletes the key: present values are patched as they are.
           json_merge_patch(e, json_object(
               'auditID', CASE WHEN no_id THEN to_json(content_id(coalesce(logged, e::VARCHAR)))
                               ELSE (e->'auditID') END,
               'stage', CASE WHEN no_stage THEN to_json('ResponseComplete')
                             ELSE (e->'stage') END,
               'requestReceivedTimestamp', CASE WHEN no_ts THEN to_json(ts_fill)
                   ELSE (e->'requestReceivedTimestamp') END))::VARCHAR
            WHEN logged IS NOT NULL THEN logged
            ELSE as_logged(e, fix) END AS text,
       fmt,
       CASE WHEN (e->'verb') IS NULL THEN lossy ELSE
       list_sort(list_distinct(list_concat(lossy, list_filter(
           [CASE WHEN no_id THEN 'audit_id' END, CASE WHEN no_stage THEN 'stage' END,
            CASE WHEN no_ts AND ts_fill IS NOT NULL THEN 'request_ts' END],
           lambda x: x IS NOT NULL))))
       END AS lossy
FROM filled
WHERE e IS NOT NULL AND (batched OR (e->'verb') IS NOT NULL AND NOT (no_ts AND ts_fill IS NULL))
   OR e IS NULL AND batched AND logged IS NOT NULL
UNION ALL
-- Records that are not Kubernetes audit data: counted by the loader, never quarantined.
SELECT line, 0::BIGINT, false, what, 'skip', []::VARCHAR[] FROM (
    SELECT line, CASE kind
        WHEN 'skip-azure' THEN CASE WHEN coalesce(j->'$.properties.log', j->'log_s') IS NOT NULL
                                    THEN 'aks:' ELSE 'azure:' END || cat
        ELSE 'gcp:' || coalesce(j->>'$.protoPayload.serviceName', j->>'serviceName',
                                regexp_extract(j->>'logName', '/logs/(.*)$', 1), 'unknown')
        END AS what
    FROM kaudit_cls WHERE kind IN ('skip-azure', 'skip-gcp')
    UNION ALL
    SELECT line, 'aks:skipped-too-big-size-object' FROM aks
    WHERE logged = 'skipped-too-big-size-object'
    UNION ALL
    SELECT line, 'cloudwatch:'
                 || coalesce(nullif(regexp_replace(stream, '-?[0-9a-f]{16,}$', ''), ''), 'text')
    FROM kaudit_cwm WHERE coalesce(json_type(j), '') <> 'OBJECT'
    UNION ALL
    -- An export of a whole EKS log group holds the other control-plane logs too.
    SELECT line, 'cloudwatch:text' FROM kaudit_src
    WHERE ts <> '' AND NOT starts_with(msg, '{') AND NOT starts_with(msg, 'AUDIT:')
)
"""


def detect(head: bytes, size: int, max_document_bytes: int) -> str:
    """How to read a file, from its first bytes: ``lines``, ``document`` or ``unknown``.

    ``document`` is one JSON value spread over many lines (a pretty-printed event or
    ``EventList``, a JSON array); ``lines`` is one JSON value per line, whatever its kind, or a
    CloudWatch export (``<timestamp> <event JSON>`` or base64 gzip deliveries per line).
    """
    body = head.removeprefix(_lines.BOM_UTF8).lstrip()
    if body.startswith(b"["):
        return "document"
    if _CLOUDWATCH_LINE.match(body) or body.startswith(b"H4sI"):
        return "lines"
    if not body.startswith(b"{"):
        return "unknown"
    first = body.split(b"\n", 1)[0]
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return "document" if size <= max_document_bytes else "lines"
    return "lines"


def is_yaml_name(name: str) -> bool:
    """Whether a file is named as YAML (read as a document of events, like the KHI samples)."""
    return name.endswith((".yaml", ".yml"))


def parse_document(raw: bytes, name: str) -> Any:
    """The one value a document file holds, or None when it is not a document.

    JSON first; YAML for ``*.yaml``/``*.yml`` (several ``---`` documents become a list); JSON
    objects written back to back (a Firehose delivery to S3) become ``{"records": [...]}``.

    Examples
    --------
    >>> parse_document(b"# comment\\nkind: Event\\nverb: get\\n", "event.yaml")
    {'kind': 'Event', 'verb': 'get'}
    >>> parse_document(b'{"a":1}{"a":2}', "delivery")
    {'records': [{'a': 1}, {'a': 2}]}
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    if is_yaml_name(name):
        try:
            docs = [d for d in yaml.safe_load_all(raw) if d is not None]
        except yaml.YAMLError:
            return None
        # Unquoted YAML timestamps are datetimes: JSON text again, as the loader expects.
        value = orjson.loads(orjson.dumps(docs[0] if len(docs) == 1 else docs, default=str))
        return value if isinstance(value, (dict, list)) else None
    if raw.lstrip().startswith(b"{") and b"}{" in raw:
        return split_concatenated(raw)
    return None


# --- CloudWatch subscription deliveries ----------------------------------------------------------

_GZIP_B64: Final = "H4sI"  # base64 of the gzip magic and the deflate method byte


def _gunzip_b64(data: str) -> Any:
    """The JSON value(s) in one base64 gzip blob; several concatenated values become a list."""
    try:
        raw = zlib.decompress(base64.b64decode(data, validate=True), zlib.MAX_WBITS | 16)
    except (binascii.Error, zlib.error, ValueError):
        return None
    return split_concatenated(raw)


def split_concatenated(raw: bytes) -> Any:
    """Parse one JSON value, or several written back to back (Firehose does that), as a list.

    Examples
    --------
    >>> split_concatenated(b'{"a":1}{"a":2}')
    {'records': [{'a': 1}, {'a': 2}]}
    >>> split_concatenated(b'{"a":1}')
    {'a': 1}
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        parts = raw.replace(b"}{", b"}\n{").split(b"\n")
        try:
            return {"records": [orjson.loads(p) for p in parts if p.strip()]}
        except orjson.JSONDecodeError:
            return None


def _delivery(text: str) -> str | None:
    """A line that holds base64 gzip CloudWatch deliveries, decoded as one JSON text."""
    body = text.strip()
    if body.startswith(_GZIP_B64):
        value = _gunzip_b64(body)
    else:
        # Kinesis or Firehose records around the deliveries: {"records": [{"data": ...}]}.
        try:
            outer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        records = outer.get("records", [outer]) if isinstance(outer, dict) else []
        blobs = [r.get("data") for r in records if isinstance(r, dict)]
        decoded = [_gunzip_b64(b) for b in blobs if isinstance(b, str)]
        value = {"records": [d for d in decoded if d is not None]} if any(decoded) else None
    return None if value is None else orjson.dumps(value).decode()


def decode_deliveries(text: pa.Array) -> pa.Array:
    """Replace base64 gzip CloudWatch subscription deliveries by the JSON they hold.

    Only lines that hold such a blob are touched (one Python call per delivery, each holding
    up to thousands of log events); SQL has no gunzip, so this runs before ``NORMALIZE_SQL``.
    """
    hit = pc.match_substring(text, _GZIP_B64)
    if not pc.any(hit).as_py():
        return text
    values = text.to_pylist()
    for i in pc.indices_nonzero(hit).to_pylist():
        decoded = _delivery(values[i])
        if decoded is not None:
            values[i] = decoded
    return pa.array(values, type=text.type)
