"""The cluster of ``--dask local:N``: a ``distributed.LocalCluster`` of N worker processes on
127.0.0.1, every connection TLS with temporary credentials (``Security.temporary()``: a
certificate made for this run, in memory, never written), and no dashboard unless asked for.

Dask pickles tasks, so whoever can reach a scheduler can run code as the TA; TLS with a
certificate only this process holds keeps the other users of the machine out. Without
``dashboard`` the scheduler and the workers answer HTTP with their health check alone (Dask
serves task names, logs and metrics there otherwise); with it, the dashboard listens on
127.0.0.1 only.
"""
from __future__ import annotations

import logging

HEALTH_ONLY = {"distributed.scheduler.http.routes": ["distributed.http.health"],
               "distributed.worker.http.routes": ["distributed.http.health"]}


def local_cluster(n_workers: int, threads_per_worker: int, *, dashboard: bool = False,
                  resources: dict[str, float] | None = None, security=None):
    """``(cluster, security)``: a started LocalCluster and the ``distributed.Security`` a client
    needs to reach it (``security``: credentials to use instead of temporary ones).

    Each worker gets ``threads_per_worker`` threads (one per zygote), no memory limit of Dask's
    (each sandbox has its own; the nanny would otherwise restart a worker whose grader is busy)
    and ``resources``."""
    import dask
    import distributed

    security = security if security is not None else distributed.Security.temporary()
    with dask.config.set({} if dashboard else HEALTH_ONLY):
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
            security=security, protocol="tls://", dashboard_address="127.0.0.1:0" if dashboard else None,
            memory_limit=0, silence_logs=logging.ERROR, resources=resources or None)
    return cluster, security
