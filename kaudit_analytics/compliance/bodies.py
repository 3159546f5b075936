"""What the controls read inside request and response bodies, and inside exec commands.

Bodies are raw JSON text (the events table never parses them into columns: their shapes
differ per resource), so every test here is a regular expression over the text, named in a
table. Only names ever leave this module - which flag matched, which capability, which host
path, which key - never a value: that is what keeps Secret and ConfigMap values out of every
report, whatever level they were logged at.

Patterns look for a key and its value side by side, which also matches the same fields inside
a merge patch, a strategic-merge patch or a server-side apply body. A JSON Patch addresses a
field by path (``{"op": "replace", "path": "/rules/0/verbs", "value": ["*"]}``):
``as_fragment`` rewrites such operations into the fragment they write (``"verbs": ["*"]``) so
that the same patterns see them. Escaped JSON (kubectl's last-applied annotation) does not
match most patterns, because there the quote before a colon is preceded by a backslash.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from kaudit_analytics.compliance.settings import Settings, glob_regex

__all__ = [
    "ESCALATION_FLAGS",
    "EXEC_CLASSES",
    "GRANT_FLAGS",
    "POD_FLAGS",
    "added_capabilities",
    "as_fragment",
    "credential_keys",
    "disallowed_images",
    "flag_names",
    "host_paths",
    "images",
    "rule_grants",
]

Flags = tuple[tuple[str, str], ...]

#: Pod-spec flags of ``privileged-pod`` (in pods and in workload templates).
POD_FLAGS: Flags = (
    ("privileged", r'"privileged"\s*:\s*true'),
    ("hostPath", r'"hostPath"\s*:\s*\{'),
    ("hostNetwork", r'"hostNetwork"\s*:\s*true'),
    ("hostPID", r'"hostPID"\s*:\s*true'),
    ("hostIPC", r'"hostIPC"\s*:\s*true'),
    ("runs as root (runAsUser 0)", r'"runAsUser"\s*:\s*0\s*[,}]'),
    ("runAsNonRoot false", r'"runAsNonRoot"\s*:\s*false'),
    ("allowPrivilegeEscalation", r'"allowPrivilegeEscalation"\s*:\s*true'),
)

# A list value, or (inside a rewritten JSON Patch) a single string.
_LIST_WITH = r'\s*:\s*(?:\[[^\]]*)?"'

#: What makes an RBAC write an escalation, read from the body (request, rewritten JSON Patch,
#: and the response object when it was logged).
ESCALATION_FLAGS: Flags = (
    ("wildcard verbs", r'"verbs"' + _LIST_WITH + r'\*"'),
    ("wildcard resources", r'"resources"' + _LIST_WITH + r'\*"'),
    ("wildcard apiGroups", r'"apiGroups"' + _LIST_WITH + r'\*"'),
    (
        "grants escalate/bind/impersonate",
        r'"verbs"' + _LIST_WITH + r"(?:escalate|bind|impersonate)\"",
    ),
    ("binds system:masters", r'"subjects"\s*:\s*\[[^\]]*"name"\s*:\s*"system:masters"'),
)

_WRITE = "create|update|patch|delete|deletecollection|\\*"
#: Sensitive grants inside one rule of a Role or ClusterRole: (name, resources, verbs).
GRANT_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("pods/exec", r"pods/(?:exec|attach|\*)", r"create|get|\*"),
    ("nodes/proxy", r"nodes/(?:proxy|\*)", r"[a-z*]+"),
    ("serviceaccounts/token", r"serviceaccounts/(?:token|\*)", r"create|\*"),
    ("Secret reads", r"secrets", r"get|list|watch|\*"),
    ("RBAC writes", r"roles|clusterroles|rolebindings|clusterrolebindings", _WRITE),
    ("workload writes", r"pods|daemonsets|deployments|statefulsets|cronjobs|jobs", _WRITE),
)

# One rule object of a Role: no nested objects inside, so "{...}" without braces is one rule.
_RULE = r'\{[^{}]*"verbs"[^{}]*\}'
_PATCH_TARGET = r'"/rules/[0-9-]+/(verbs|resources|apiGroups)(?:/[0-9-]+)?"'
# An operation's "op" member may sit between its "path" and its "value".
_OP = r'\s*,\s*(?:"op"\s*:\s*"[a-z]+"\s*,\s*)?'


def as_fragment(body: pl.Expr) -> pl.Expr:
    """A JSON Patch's operations on role rules rewritten as the fragment they write.

    ``{"op":"replace","path":"/rules/0/verbs","value":["*"]}`` becomes
    ``{"op":"replace","verbs":["*"]}`` (either order of ``path`` and ``value``); other bodies
    are unchanged.

    Examples
    --------
    >>> import polars as pl
    >>> patch = '[{"op": "add", "path": "/rules/0/verbs/-", "value": "*"}]'
    >>> pl.select(as_fragment(pl.lit(patch))).item()
    '[{"op": "add", "verbs": "*"}]'
    """
    path_first = body.str.replace_all(
        r'"path"\s*:\s*' + _PATCH_TARGET + _OP + r'"value"\s*:', r'"${1}":'
    )
    return path_first.str.replace_all(
        r'"value"\s*:\s*(\[[^\]]*\]|"[^"]*")' + _OP + r'"path"\s*:\s*' + _PATCH_TARGET,
        r'"${2}": ${1}',
    )


def flag_names(flags: Flags, body: pl.Expr) -> pl.Expr:
    """The names of the flags whose pattern matches ``body``, joined by ", " ("" for none)."""
    hits = [body.str.contains(pattern).fill_null(value=False) for _, pattern in flags]
    return pl.concat_str(
        [pl.when(hit).then(pl.lit(name)) for hit, (name, _) in zip(hits, flags, strict=True)],
        separator=", ",
        ignore_nulls=True,
    )


def rule_grants(body: pl.Expr, names: Iterable[str] | None = None) -> pl.Expr:
    """The sensitive grants (``GRANT_FLAGS``) of the rules in a role body, joined by ", "."""
    chosen = [flag for flag in GRANT_FLAGS if names is None or flag[0] in set(names)]
    rules = body.str.extract_all(_RULE)
    hits = [
        rules.list.eval(
            pl.element().str.contains(rf'"resources"\s*:\s*(?:\[[^\]]*)?"(?:{res})"')
            & pl.element().str.contains(rf'"verbs"\s*:\s*(?:\[[^\]]*)?"(?:{verbs})"')
        )
        .list.any()
        .fill_null(value=False)
        for _, res, verbs in chosen
    ]
    return pl.concat_str(
        [pl.when(hit).then(pl.lit(name)) for hit, (name, _, _) in zip(hits, chosen, strict=True)],
        separator=", ",
        ignore_nulls=True,
    )


def _joined(values: pl.Expr) -> pl.Expr:
    """A list of names as "a, b" (unique, in first-seen order); "" for none."""
    return values.list.unique(maintain_order=True).list.join(", ").fill_null("")


def host_paths(body: pl.Expr, settings: Settings) -> pl.Expr:
    """The hostPath paths of a pod spec that ``settings.sensitive_host_paths`` name."""
    pattern = r'"hostPath"\s*:\s*\{[^{}]*"path"\s*:\s*"([^"]*)"'
    sensitive = glob_regex(settings.sensitive_host_paths)
    paths = body.str.extract_all(pattern).list.eval(
        pl.element().str.extract(pattern, 1).str.replace(r"(.)/+$", "${1}")
    )
    return _joined(paths.list.eval(pl.element().filter(pl.element().str.contains(sensitive))))


def added_capabilities(body: pl.Expr, settings: Settings) -> pl.Expr:
    """The dangerous capabilities (``settings.dangerous_capabilities``) a pod spec adds."""
    block = r'"capabilities"\s*:\s*\{[^{}]*"add"\s*:\s*\[[^\]]*\]'
    wanted = glob_regex(settings.dangerous_capabilities)
    added = (
        body.str.extract_all(block)
        .list.eval(pl.element().str.extract(r'"add"\s*:\s*\[([^\]]*)\]', 1))
        .list.join(",")
    )
    names = added.str.extract_all(r'"[^"]+"').list.eval(
        pl.element().str.strip_chars('"').str.to_uppercase().str.replace("^CAP_", "")
    )
    return _joined(names.list.eval(pl.element().filter(pl.element().str.contains(wanted))))


_IMAGE = r'"image"\s*:\s*"([^"]+)"'


def images(body: pl.Expr) -> pl.Expr:
    """The container images named in a pod spec or workload template (``list[str]``)."""
    return body.str.extract_all(_IMAGE).list.eval(pl.element().str.extract(_IMAGE, 1))


def _registry(image: pl.Expr) -> pl.Expr:
    first = image.str.extract(r"^([^/]+)/", 1)
    explicit = first.str.contains(r"[.:]") | (first == "localhost")
    return pl.when(explicit.fill_null(value=False)).then(first).otherwise(pl.lit("docker.io"))


def _canonical(image: pl.Expr) -> pl.Expr:
    """``nginx`` is ``docker.io/library/nginx``, ``bitnami/redis`` ``docker.io/bitnami/redis``."""
    first = image.str.extract(r"^([^/]+)/", 1)
    explicit = (first.str.contains(r"[.:]") | (first == "localhost")).fill_null(value=False)
    library = ~image.str.contains("/")
    return (
        pl.when(explicit)
        .then(image)
        .when(library)
        .then(pl.lit("docker.io/library/") + image)
        .otherwise(pl.lit("docker.io/") + image)
    )


def disallowed_images(body: pl.Expr, settings: Settings) -> pl.Expr:
    """The images outside ``allowed_images`` whose registry is outside ``allowed_registries``."""
    if not (settings.allowed_images or settings.allowed_registries):
        return pl.lit("")  # no allow-list: nothing is outside it
    allowed_image = glob_regex(settings.allowed_images)
    allowed_registry = glob_regex(settings.allowed_registries)
    element = pl.element()
    ok = (
        element.str.contains(allowed_image)
        | _canonical(element).str.contains(allowed_image)
        | _registry(element).str.contains(allowed_registry)
    )
    return _joined(images(body).list.eval(element.filter(~ok)))


def credential_keys(body: pl.Expr, settings: Settings) -> pl.Expr:
    """Keys of a ConfigMap body whose names say they hold a credential (names, never values)."""
    words = "|".join(settings.credential_keys)
    pattern = rf'(?i)"([^"\\]*(?:{words})[^"\\]*)"\s*:\s*"[^"]'
    found = body.str.extract_all(pattern).list.eval(pl.element().str.extract(pattern, 1))
    private_key = body.str.contains(r"-----BEGIN [A-Z ]*PRIVATE KEY-----").fill_null(value=False)
    names = _joined(found)
    return (
        pl.when(private_key)
        .then(
            pl.concat_str([names, pl.lit("a PEM private key")], separator=", ").str.strip_chars(
                ", "
            )
        )
        .otherwise(names)
    )


#: How exec commands are classified: (name, regular expression over the decoded command).
EXEC_CLASSES: Flags = (
    (
        "instance metadata",
        r"169\.254\.169\.254|169\.254\.170\.2|fd00:ec2::254|100\.100\.100\.200"
        r"|metadata\.google\.internal|computeMetadata|/metadata/instance|/latest/meta-data",
    ),
    (
        "credential path",
        r"/var/run/secrets|/run/secrets|serviceaccount/token|/etc/kubernetes|\.kube/config"
        r"|kubeconfig|/etc/shadow|/etc/gshadow|/etc/sudoers|\.ssh/|id_rsa|id_ed25519"
        r"|\.aws/credentials|\.docker/config\.json|/proc/[^/ ]+/environ|\.git-credentials"
        r"|/var/lib/kubelet/pki|\.bash_history",
    ),
    (
        "reverse shell",
        r"/dev/tcp/|/dev/udp/|\bnc(?:at)?\b[^|;]*\s-[a-z]*[ec]\b|\bmkfifo\b|\bsocat\b[^|;]*exec"
        r"|pty\.spawn|\b(?:ba)?sh\s+-i\b|perl\s+-e[^|;]*socket|php\s+-r[^|;]*fsockopen"
        r"|ruby\s+-rsocket|\btelnet\b[^|;]*\|",
    ),
    ("download (curl/wget)", r"\b(?:curl|wget)\b"),
    ("file copy (tar, as kubectl cp)", r"\btar\s+-?[a-zA-Z]*[cx][a-zA-Z]*"),
    ("cluster tool", r"\b(?:kubectl|helm|crictl|ctr|docker)\b"),
    ("script interpreter", r"\b(?:python[0-9.]*|perl|ruby|node|php)\b"),
    ("shell", r"^(?:/usr)?(?:/bin/)?(?:ba|z|a|da|k)?sh\b"),
)
