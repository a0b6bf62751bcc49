"""Without namespaces (``isolation="none"``, e.g. a container that forbids them), a root grader
still runs student code as an unprivileged uid of its own: root's files stay out of reach."""
from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from grader.sandbox import Limits, SandboxPool

PROBE = textwrap.dedent('''
    import os
    import numpy as np

    def probe(path):
        target = os.path.join(TARGET, "results.json")
        try:
            with open(target, "w") as handle:
                handle.write("forged")
            wrote = 1.0
        except OSError:
            wrote = 0.0
        return np.array([float(os.getuid()), float(os.geteuid()), wrote])

    def add(a, b):
        return a + b
''')


from grader.sandbox.privileges import python_open_to_others


@pytest.mark.skipif(os.geteuid() != 0 or not python_open_to_others(),
                    reason="the uid switch applies to a root grader whose Python other users can run")
def test_unsandboxed_mode_drops_root(tmp_path):
    results = tmp_path / "results"          # root-owned, like /autograder/results
    results.mkdir(mode=0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "solution.py").write_text(PROBE.replace("TARGET", repr(str(results))), "utf-8")
    calls = [[{"id": "p", "kind": "function", "name": "probe", "args": [np.zeros(1)], "kwargs": {}}],
             [{"id": "a", "kind": "function", "name": "add", "args": [np.ones(2), np.ones(2)], "kwargs": {}}]]
    with SandboxPool(Limits(), workers=1, isolation="none") as pool:
        result = pool.run(work, "solution.py", "full", calls)
    assert result.status == "ok", result.message
    uid, euid, wrote = result.calls["p"].value["value"]
    assert uid != 0 and euid != 0
    assert wrote == 0.0 and not (results / "results.json").exists()
    assert result.calls["a"].value["value"].tolist() == [2.0, 2.0]
