import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

#: Set to 1 on a developer's laptop without user namespaces to SKIP the sandbox tests (loudly);
#: anywhere else, CI included, missing isolation FAILS them: a green run must have attacked
#: the sandbox.
NO_ISOLATION_OPT_OUT = "GRADER_TESTS_WITHOUT_ISOLATION"


@pytest.fixture(scope="session")
def isolation_required() -> None:
    """Fail the test when the sandbox's namespaces are unavailable, unless opted out."""
    from grader.sandbox import isolation_available

    available, reason = isolation_available()
    if available:
        return
    if os.environ.get(NO_ISOLATION_OPT_OUT) == "1":
        pytest.skip(f"no sandbox isolation ({reason}); skipped because {NO_ISOLATION_OPT_OUT}=1")
    pytest.fail(f"sandbox isolation is unavailable here ({reason}), so this sandbox test cannot run; "
                f"on a developer's laptop set {NO_ISOLATION_OPT_OUT}=1 to skip it (never in CI)", pytrace=False)


def pytest_terminal_summary(terminalreporter) -> None:
    # read from the reports (under pytest-xdist the skips happen in the workers' processes)
    skipped = terminalreporter.stats.get("skipped", [])
    if any(NO_ISOLATION_OPT_OUT in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_sep("!", f"WARNING: THE SANDBOX TESTS WERE SKIPPED ({NO_ISOLATION_OPT_OUT}=1): "
                                        "the sandbox was NOT attacked", red=True)
