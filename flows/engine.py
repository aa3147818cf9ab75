"""Where flows run: the Prefect API and the Dask cluster.

Dask worker processes report their Prefect task runs to the API named by ``PREFECT_API_URL`` in
their environment; without it each worker would start its own temporary server (slow, and its runs
would be invisible). ``prefect_api()`` therefore starts Prefect's local temporary API in this
process when no server is configured and exports its URL before any worker starts.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import flows  # noqa: F401  (offline Prefect defaults)


@contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API URL: the configured server's, or a temporary local one for this process."""
    from prefect.settings import PREFECT_API_URL

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # send the last run logs before the API goes away
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def task_runner(dask_address: str | None = None, workers: int | None = None):
    """A DaskTaskRunner on an existing scheduler (``dask_address``) or on a new LocalCluster.

    Local workers are processes with one thread each (the face models are not thread-safe and each
    process loads them once); ``workers`` defaults to the machine's cores.
    """
    from prefect_dask import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's INFO chatter drowns the run's progress
    if dask_address:
        if workers:
            raise ValueError("--workers applies to the local cluster only; omit it with --dask-address")
        return DaskTaskRunner(address=dask_address)
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {n}")
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": n,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
            "silence_logs": logging.WARNING,
        }
    )
