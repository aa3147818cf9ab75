"""Where flows run: the Prefect API, the Dask cluster, and every fan-out of work over it.

Dask worker processes report their Prefect task runs to the API named by ``PREFECT_API_URL`` in
their environment; without it each worker would start its own temporary server (slow, and its runs
would be invisible). ``prefect_api()`` therefore starts Prefect's local temporary API for this
process when no server is configured and exports its URL before any worker starts.
"""

import importlib.util
import logging
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import flows  # noqa: F401  (offline Prefect defaults)
from tasks.store import StepResult, Store

# what this process has started so far: temporary Prefect APIs and local Dask clusters (tests and benchmarks
# read it, e.g. to see that a run with nothing to do starts neither)
STARTED = {"prefect_api": 0, "dask_cluster": 0}


class TemporaryApi:
    """Prefect's temporary local API in its own process, as ``prefect.server.api.server.SubprocessASGIServer``
    runs it (uvicorn over the server's ``create_app``, UI off), without importing the server's modules into
    this process, which never uses them (~2.7 s here); :meth:`wait` waits until it answers."""

    def __init__(self) -> None:
        self.port = 0
        self.ready = False
        self.process = self._spawn()
        STARTED["prefect_api"] += 1

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> subprocess.Popen:
        with socket.socket() as probe:  # a free port (uvicorn exits with code 3 when it is taken meanwhile)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        site = Path(importlib.util.find_spec("prefect").origin).parents[1]  # the folder holding prefect
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(site), "--factory",
                   "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                   "--log-level", "error", "--lifespan", "on"]  # fmt: skip
        env = os.environ | {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        return subprocess.Popen(command, env=env)

    def wait(self, timeout: float) -> str:
        """The API URL once the API answers its health check; RuntimeError when it exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never through a proxy
        while not self.ready:
            code = self.process.poll()
            if code == 3:
                self.process = self._spawn()
            elif code is not None:
                raise RuntimeError(f"the temporary Prefect API exited with code {code} while starting")
            try:
                with direct.open(f"{self.api_url}/health", timeout=2):
                    self.ready = True
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the temporary Prefect API did not start within {timeout:g} s") from None
                time.sleep(0.1)
        return self.api_url

    def stop(self) -> None:
        """Stop it: gracefully once it answered (up to 5 s), at once while it is still starting (a graceful stop
        would wait for the start-up to finish)."""
        if not self.ready:
            self.process.kill()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API URL: the configured server's, or that of a temporary local one for this process (a
    :class:`TemporaryApi`), set as this process' API (Prefect's settings) and the Dask workers' (exported
    ``PREFECT_API_URL``) until it stops on leaving."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    server = TemporaryApi()
    try:
        url = server.wait(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        os.environ["PREFECT_API_URL"] = url
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5)  # send the last run logs before the API goes away
    finally:
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
        cluster_class=local_cluster,
        cluster_kwargs={
            "n_workers": n,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
            "silence_logs": logging.WARNING,
        },
    )


def local_cluster(**kwargs):
    """A Dask ``LocalCluster`` (counted in :data:`STARTED`)."""
    from distributed import LocalCluster

    STARTED["dask_cluster"] += 1
    return LocalCluster(**kwargs)


def map_on_cluster(fn: Callable, items: list) -> list:
    """``fn`` over ``items`` on the Dask cluster of the Prefect task that calls it, results in input order.

    Called from inside a task running on a Dask worker: ``worker_client`` secedes from the worker's thread
    pool while it waits, so the worker's slot serves the items meanwhile.
    """
    from distributed import worker_client

    if not items:
        return []
    with worker_client() as client:
        return client.gather(client.map(fn, items, pure=False))


def gpu_resources_available(client) -> bool:
    """Whether any worker of the Dask ``client`` was started with a ``GPU`` resource (``--resources GPU=1``).

    A task annotated with a resource no worker has waits forever (PLATFORM.md), so annotate only when True.
    """
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers)


def infer_on_dask(
    client,
    store: Store,
    video_ids: list[str],
    task: str,
    *,
    videos_per_task: int = 8,
    **options,
) -> list[StepResult]:
    """:func:`tasks.inference.infer_videos` (``options``: its window, stride, device) on batches of at most
    ``videos_per_task`` videos (fewer when that would leave a worker idle) mapped over the Dask ``client``'s
    workers, each batch holding one GPU (``resources={"GPU": 1}``) when the cluster has GPU workers;
    results of all videos in input order."""
    from tasks.inference import infer_videos  # torch: only where inference runs

    if videos_per_task < 1:
        raise ValueError(f"videos_per_task must be >= 1, got {videos_per_task}")
    ids = list(dict.fromkeys(video_ids))
    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    per_task = max(1, min(videos_per_task, math.ceil(len(ids) / workers)))  # every worker gets work
    batches = [ids[i : i + per_task] for i in range(0, len(ids), per_task)]
    if not batches:
        return []
    work = partial(infer_videos, store, task=task, **options)
    resources = {"GPU": 1} if gpu_resources_available(client) else None
    futures = client.map(work, batches, pure=False, resources=resources)
    return [result for part in client.gather(futures) for result in part]


_progress: Callable[[int, int, int], None] | None = None  # set while console_progress() shows a bar


def report_progress(videos_done: int, videos_total: int, frames: int) -> None:
    """Tell the console's progress bar, if this process shows one, how far the run is."""
    if _progress is not None:
        _progress(videos_done, videos_total, frames)


@contextmanager
def console_progress(enabled: bool, console=None) -> Iterator[None]:
    """In a terminal: one progress bar (videos, frames, rate, ETA) instead of a log line per video.

    Meanwhile Prefect's console handler shows warnings and errors only; the Prefect API still receives every
    log line. Disabled (output not a terminal, or a flow run served by Prefect): nothing changes.
    """
    global _progress
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "PrefectConsoleHandler"]
    levels = [h.level for h in handlers]
    columns = (
        TextColumn("videos"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[frames]} frames, {task.fields[rate]:.1f} frames/s"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("extract", total=None, frames=0, rate=0.0)
        start = time.perf_counter()

        def update(done: int, total: int, frames: int) -> None:
            rate = frames / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total, frames=frames, rate=rate)

        for handler in handlers:
            handler.setLevel(logging.WARNING)
        _progress = update
        try:
            yield
        finally:
            _progress = None
            for handler, level in zip(handlers, levels, strict=True):
                handler.setLevel(level)
