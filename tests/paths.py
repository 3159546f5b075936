"""Where the tests find the repository and the optional shared reference folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Real audit logs and reference material next to the repository, on development machines
#: only: every test that reads it skips cleanly when it is absent.
SHARED = REPO.parent / "shared"
SHARED_SAMPLES = SHARED / "samples"
SEED_POLICIES = SHARED / "reference" / "seed-policies"
CAPTURES = SHARED / "reference" / "apiserver-captures"
#: The project's own fixtures: always present.
FIXTURES = REPO / "tests" / "fixtures"
#: Audit policies the tests use: the docs example, Metadata for everything, a tuned one.
POLICIES = FIXTURES / "policy"
#: The policy files in ``POLICIES`` (the same policies as ``SEED_POLICIES``, our own copies).
POLICY_FILES = ("docs-example.yaml", "metadata-all.yaml", "tuned.yaml")
