"""Course policy applied when results are merged, never by re-running code: the late policy."""
from grader.policy.book import POLICY_NAME, PROBLEMS_NAME, LateBook
from grader.policy.late import LatePolicy, PolicyError, late_days, parse_policy, penalty

__all__ = ["POLICY_NAME", "PROBLEMS_NAME", "LateBook", "LatePolicy", "PolicyError", "late_days", "parse_policy",
           "penalty"]
