"""A TLS LocalCluster in a process of its own, for tests/test_dask.py: ``python tests/dask_cluster.py
FOLDER`` starts one plain worker and one with the resource ``GPU`` (CPU workers with a label), a
scheduler that gives up on a task after ONE worker death more (``allowed-failures`` 1, Dask's
default is 3), and writes ``FOLDER/scheduler.json`` and ``FOLDER/tls.json`` (the temporary
credentials), then waits to be killed (its process group: scheduler, nannies and workers).

The scheduler lives here, not in the test's process, so that a test can make it disappear
(kill -9) under a grading. The workers inherit this process's environment (``GRADER_DASK_FAULT``).

``warm`` (run on both workers as soon as they are up), ``patch_isolation`` and
``restore_isolation`` run on the workers (``Client.run``); the last two make a worker whose machine
has no user namespaces, without finding one.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

GPU = "GPU"
ALLOWED_FAILURES = 1
SAVED = "_test_saved_isolation"


def patch_isolation() -> None:
    """On a worker: ``environment.isolation`` says no namespaces (what a machine without them says)."""
    from grader.engines import environment

    setattr(environment, SAVED, environment.isolation)
    environment.isolation = lambda: (False, "unshare(CLONE_NEWUSER): Operation not permitted (test)")


def restore_isolation() -> None:
    from grader.engines import environment

    environment.isolation = getattr(environment, SAVED)


def warm() -> None:
    """On a worker: import what grading needs (torch, the reference) before the first task asks."""
    import grader.engines.worker  # noqa: F401
    import grader.reference_oracle  # noqa: F401
    import grader.run  # noqa: F401


def main(folder: Path) -> None:
    import dask
    import distributed  # its configuration first: dask.config.set would drop it on exit

    from grader.engines.local_cluster import HEALTH_ONLY, local_cluster

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, **HEALTH_ONLY}):
        cluster, security = local_cluster(1, 1)
        cluster.new_spec["options"] = {**cluster.new_spec["options"], "resources": {GPU: 1}}
        cluster.scale(2)   # the labelled worker's nanny keeps this configuration for its restarts
        cluster.wait_for_workers(2)
    credentials = {"ca": security.tls_ca_file, "cert": security.tls_client_cert, "key": security.tls_client_key}
    (folder / "tls.json").write_text(json.dumps(credentials), "utf-8")
    (folder / "scheduler.json").write_text(json.dumps({"address": cluster.scheduler_address}), "utf-8")
    (folder / "ready").write_text("", "utf-8")
    with distributed.Client(cluster, security=security, set_as_default=False) as client:
        client.run(warm)   # while the test grades its reference class
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
