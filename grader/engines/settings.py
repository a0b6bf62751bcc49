"""``--dask`` and its flags as a plain record (parsing them imports nothing of Dask).

Targets::

    local:N                a LocalCluster of N worker processes on this machine, TLS with
                           temporary credentials, no dashboard unless asked for
    tls://HOST:PORT        a running scheduler; TLS credentials from Dask's configuration
    file:SCHEDULER.json    a running scheduler's file (``dask scheduler --scheduler-file``)

A plain ``tcp://`` scheduler is refused: whoever can reach a Dask scheduler can run code as the
TA, and the submissions and grades would cross the network in clear.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONNECT_TIMEOUT_S = 60.0   # waiting for the scheduler, then for its first worker


class TargetError(ValueError):
    """A ``--dask`` value that names no cluster (the message says what is accepted)."""


@dataclass(frozen=True)
class DaskSettings:
    """How to reach the cluster and how to use it.

    ``target``: one of the module docstring's forms; ``dashboard``: the LocalCluster's dashboard
    on 127.0.0.1 (``local:N`` only; a running cluster's is its operator's business);
    ``workhouse_resource``: a worker resource label (``GPU``) that every submission's task asks one
    unit of when the rubric grades ``train_gan`` (workers started with ``--resources GPU=1`` take
    them; ``local:N`` gives each of its workers one); ``security``: a ``distributed.Security``
    for a running cluster (None: Dask's configuration, ``distributed.comm.tls.*``);
    ``connect_timeout_s``: how long to wait for the scheduler, then for a first worker."""

    target: str
    dashboard: bool = False
    workhouse_resource: str | None = None
    security: object | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S

    def __post_init__(self) -> None:
        parse_target(self.target)   # fail early, with the accepted forms
        if self.workhouse_resource is not None and not self.workhouse_resource.isidentifier():
            raise TargetError(f"--dask-workhouse-resource must be a label such as GPU, got {self.workhouse_resource!r}")

    @property
    def kind(self) -> str:
        """``"local"``, ``"address"`` or ``"file"``."""
        return parse_target(self.target)[0]

    @property
    def where(self) -> str | int | Path:
        """N for ``local:N``, the address for ``tls://``, the scheduler file's path for ``file:``."""
        return parse_target(self.target)[1]


def parse_target(target: str) -> tuple[str, str | int | Path]:
    """``("local", N)``, ``("address", "tls://HOST:PORT")`` or ``("file", Path)``; raises
    ``TargetError`` naming the accepted forms."""
    forms = "local:N, tls://HOST:PORT or file:SCHEDULER.json"
    if target.startswith("local:"):
        count = target[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise TargetError(f"--dask {target}: N must be a whole number of workers, at least 1 (expected {forms})")
        return "local", int(count)
    if target.startswith("tls://"):
        host, _, port = target[len("tls://"):].rpartition(":")
        if not host or not port.isdigit():
            raise TargetError(f"--dask {target}: expected tls://HOST:PORT")
        return "address", target
    if target.startswith("file:") and len(target) > len("file:"):
        return "file", Path(target[len("file:"):])
    if "://" in target:
        raise TargetError(f"--dask {target}: only TLS schedulers are used (whoever can reach a scheduler can run "
                          f"code as you, and grades would travel in clear); expected {forms}")
    raise TargetError(f"--dask {target}: expected {forms}")
