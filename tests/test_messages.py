"""Wording shown to students: not-run reasons said once, the self-check's "reproduce it" snippet
importing from the file the student actually checked."""
from __future__ import annotations

from types import SimpleNamespace

from grader.checks.base import outcome_failure


def _outcome(status: str, error: str = "", value=None):
    return SimpleNamespace(id="gaussian_kl/float32/0", status=status, value=value, error=error, duration_s=0.0)


def test_not_run_reason_is_prefixed_once():
    # the sandbox's reasons (grader.sandbox.inside / supervisor / portable) already carry the prefix
    sandbox_said = "not run: call gaussian_kl/value/0 of its group timed out"
    assert outcome_failure(_outcome("not_run", sandbox_said), "gaussian_kl") == sandbox_said
    assert outcome_failure(_outcome("not_run", "the sandbox stopped early"), "gaussian_kl") == \
        "not run: the sandbox stopped early"
    assert outcome_failure(_outcome("not_run"), "gaussian_kl") == \
        "not run: an earlier call of this function crashed or timed out"
