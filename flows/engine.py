"""Where flows run: the Prefect API, the Dask cluster, and every fan-out of work over it.

Dask worker processes report their Prefect task runs to the API named by ``PREFECT_API_URL`` in
their environment; without it each worker would start its own temporary server (slow, and its runs
would be invisible). ``prefect_api()`` therefore starts Prefect's local temporary API in this
process when no server is configured and exports its URL before any worker starts. That temporary API keeps its
database (run names, parameters, logs, artifacts, which name files and videos) in a private temporary folder
removed when the API stops: nothing of a run persists in ``$PREFECT_HOME/prefect.db``. That database starts as a
copy of an empty one with Prefect's schema (:func:`empty_database`), made once per Prefect version: migrating a
new database took the API 10.3-10.7 s to answer on this machine, a copy 4.9 s (``python bench/small_jobs.py``).
"""

import contextvars
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import flows  # noqa: F401  (offline Prefect defaults)
from tasks.store import StepResult, Store

if TYPE_CHECKING:
    from tasks.extract.video import ExtractParams

# what this process has started so far: temporary Prefect APIs and local Dask clusters (tests and benchmarks
# read it, e.g. to see that a run with nothing to do starts neither)
STARTED = {"prefect_api": 0, "dask_cluster": 0}


@contextmanager
def prefect_api(meanwhile: Callable[[], None] | None = None) -> Iterator[str]:
    """The Prefect API URL: the configured server's, or a temporary local one for this process.

    ``meanwhile`` (e.g. starting the Dask cluster) runs in this thread while the temporary API starts in
    another: the API's URL is chosen and exported in ``PREFECT_API_URL`` first, so processes started meanwhile
    inherit it; the API answers before this yields. With a configured server, ``meanwhile`` just runs.
    """
    from prefect.settings import PREFECT_API_URL

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        if meanwhile is not None:
            meanwhile()
        yield configured
        return
    # its database (flow and task run names, parameters, logs, artifacts: file names and video ids) lives in a
    # private folder removed with the server, never in $PREFECT_HOME/prefect.db
    with tempfile.TemporaryDirectory(prefix="lessonlens-prefect-api-") as folder:
        database = f"sqlite+aiosqlite:///{Path(folder) / 'prefect.db'}"
        port = free_port()  # now, so that its URL is known before the server module is even imported
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        STARTED["prefect_api"] += 1
        servers = []

        def start() -> None:
            # Prefect's server module takes 1.8 s to import here: in this thread, beside ``meanwhile``
            from prefect.server.api.server import SubprocessASGIServer
            from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

            if (empty := empty_database()) is not None:
                shutil.copyfile(empty, Path(folder) / "prefect.db")  # else the server creates it (migrations)
            # without a port: Prefect's own client in this process (``get_client``, which does not see the
            # exported URL: its settings were read at import) asks for the same port-less instance and gets this one
            servers.append(SubprocessASGIServer())
            servers[0].port = port
            with temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: database}):
                servers[0].start()

        try:
            with ThreadPoolExecutor(1, thread_name_prefix="prefect-api-start") as pool:
                starting = pool.submit(contextvars.copy_context().run, start)  # with this thread's Prefect settings
                if meanwhile is not None:
                    meanwhile()
                starting.result()  # its error, if it failed
            # the port was taken in between and the server moved (rare): point this process at it
            os.environ["PREFECT_API_URL"] = servers[0].api_url
            yield servers[0].api_url
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            if servers:
                from prefect.logging.handlers import APILogWorker

                if servers[0].running:
                    APILogWorker.drain_all(timeout=5)  # send the last run logs before the API goes away
                servers[0].stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the operating system's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def empty_database() -> Path | None:
    """A Prefect database with the installed Prefect's schema and nothing else (no run, no log), kept in
    ``$XDG_CACHE_HOME/lessonlens/`` (default ``~/.cache``), which the temporary API copies instead of migrating
    a new database on every run. Made the first time (``prefect server database upgrade`` on a file of its own,
    renamed into place when done: seconds, once per Prefect version); None when it cannot be made there (the
    API then migrates its own database, as before)."""
    import prefect

    from models.files import cache_dir

    cache = cache_dir()
    target = cache / f"prefect-{prefect.__version__}-empty.db"
    if target.is_file():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".prefect-db-") as folder:
            made = Path(folder) / "prefect.db"
            env = {**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{made}"}
            command = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode or not made.is_file():
                return None
            os.replace(made, target)
    except (OSError, subprocess.SubprocessError):
        return None
    return target


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
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs=local_cluster_kwargs(workers))


def local_cluster_kwargs(workers: int | None = None) -> dict:
    """The ``LocalCluster`` of a run: ``workers`` processes (default: the machine's cores) of one thread each."""
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {n}")
    return {
        "n_workers": n,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": ":0",
        "silence_logs": logging.WARNING,
    }


def local_cluster(**kwargs):
    """A Dask ``LocalCluster`` (counted in :data:`STARTED`)."""
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # after distributed's import, which sets it to INFO
    STARTED["dask_cluster"] += 1
    return LocalCluster(**kwargs)


@contextmanager
def run_services(
    dask_address: str | None, workers: int | None, params: "ExtractParams", ahead: Callable[[int], list] | None = None
) -> Iterator[str]:
    """What a ``lessonlens run`` with work to do runs on: the Prefect API (:func:`prefect_api`) and the Dask
    scheduler at ``dask_address``, or a new local cluster of ``workers`` processes; yields the scheduler's address.

    Start-up in sequence cost a first run 11.7 s before its first chunk was planned, and the first chunk then
    loaded the models (bench/small_jobs.py). So the cluster starts while the temporary API starts (its URL
    is exported first: the workers inherit it); each local worker loads the face and body models of ``params``
    (:func:`tasks.extract.video.preload_backends`), and the chunk jobs ``ahead(n)`` plans (the first ``n`` that the
    flow will run) start on the cluster (:func:`head_start`), all while the API starts and the flow runs are
    created. The local cluster is closed before the API stops.
    """
    if dask_address:
        with prefect_api(meanwhile=partial(head_start, dask_address, ahead) if ahead else None):
            yield dask_address
        return
    kwargs = local_cluster_kwargs(workers)
    started: dict = {}

    def start_cluster() -> None:
        started["url"] = os.environ.get("PREFECT_API_URL")
        started["cluster"] = local_cluster(**kwargs)
        _preload(started["cluster"], params)
        if ahead is not None:
            head_start(started["cluster"], ahead)

    try:
        with prefect_api(meanwhile=start_cluster) as url:
            if started["url"] not in (None, url):  # the temporary API moved to another port while the workers started
                started.pop("cluster").close()
                start_cluster()
            yield started["cluster"].scheduler_address
            started.pop("cluster").close()  # before the API stops: the workers' last logs reach it
    finally:
        if "cluster" in started:
            started["cluster"].close()


def _preload(cluster, params: "ExtractParams") -> None:
    """:func:`tasks.extract.video.preload_backends` on every worker of ``cluster``, left running (fire and forget):
    a worker's first chunk waits for it on the worker's one thread."""
    from distributed import Client, fire_and_forget

    from tasks.extract.video import preload_backends

    with Client(cluster) as client:
        for worker in client.scheduler_info(n_workers=-1)["workers"]:
            fire_and_forget(client.submit(preload_backends, params, workers=[worker], pure=False))


AHEAD_PER_WORKER = 2  # chunks started ahead of the flow per worker: a chunk takes 2-4 s, the API 5-7 s to answer


def head_start(cluster, ahead: Callable[[int], list]) -> None:
    """Start the first chunk jobs that ``ahead(n)`` plans (``n``: :data:`AHEAD_PER_WORKER` per worker) on
    ``cluster`` (a cluster or a scheduler address), left running (fire and forget): a worker plans them (probing a
    video writes FFmpeg's noise to stderr, which workers silence) and submits each under its key
    (:attr:`tasks.extract.video.ChunkJob.key`), so that the flow's own submission of a chunk still running joins
    it, and one already done finds its fragments and reuses them."""
    from distributed import Client, fire_and_forget

    with Client(cluster) as client:
        n = AHEAD_PER_WORKER * len(client.scheduler_info(n_workers=-1)["workers"])
        fire_and_forget(client.submit(_start_ahead, ahead, n, pure=False, priority=1))  # before the model loads


def _start_ahead(ahead: Callable[[int], list], n: int) -> None:
    """On a worker: the chunk jobs ``ahead(n)`` plans, submitted under their keys and left running."""
    from distributed import fire_and_forget, worker_client

    from tasks.extract.video import extract_chunk
    from tasks.store import make_dirs

    jobs = ahead(n)
    for work in dict.fromkeys(job.work_dir for job in jobs):
        make_dirs(work)
    if jobs:
        with worker_client() as client:
            fire_and_forget(client.map(extract_chunk, jobs, key=[job.key for job in jobs]))


def map_on_cluster(fn: Callable, items: list, keys: list[str] | None = None) -> list:
    """``fn`` over ``items`` on the Dask cluster of the Prefect task that calls it, results in input order.

    Called from inside a task running on a Dask worker: ``worker_client`` secedes from the worker's thread
    pool while it waits, so the worker's slot serves the items meanwhile. ``keys``: the items' Dask keys (a
    task of the same key already on the cluster is joined, not run again); else new ones.
    """
    from distributed import worker_client

    if not items:
        return []
    with worker_client() as client:
        if keys is None:
            return client.gather(client.map(fn, items, pure=False))
        return client.gather(client.map(fn, items, key=keys))


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
    """:func:`tasks.predict.inference.infer_videos` (``options``: its window, stride, device) on batches of at most
    ``videos_per_task`` videos (fewer when that would leave a worker idle) mapped over the Dask ``client``'s
    workers, each batch holding one GPU (``resources={"GPU": 1}``) when the cluster has GPU workers;
    results of all videos in input order. With fewer batches than worker threads (one long video on two workers),
    each batch's net runs on the idle ones' share of CPU threads: the expression net took 5.2 ms a face on one
    thread and 3.5 ms on two (``python bench/expression_net.py``, 2 cores)."""
    if videos_per_task < 1:
        raise ValueError(f"videos_per_task must be >= 1, got {videos_per_task}")
    ids = list(dict.fromkeys(video_ids))
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    per_task = max(1, min(videos_per_task, math.ceil(len(ids) / max(1, len(workers)))))  # every worker gets work
    batches = [ids[i : i + per_task] for i in range(0, len(ids), per_task)]
    if not batches:
        return []
    threads = max(1, sum(w.get("nthreads", 1) for w in workers) // len(batches))
    work = partial(_infer_batch, store, task=task, threads=threads, **options)
    resources = {"GPU": 1} if gpu_resources_available(client) else None
    futures = client.map(work, batches, pure=False, resources=resources)
    return [result for part in client.gather(futures) for result in part]


def _infer_batch(store: Store, video_ids: list[str], task: str, **options) -> list[StepResult]:
    """:func:`tasks.predict.inference.infer_videos` on a worker, imported there. The rule baseline needs no torch; a
    promoted model's predictor imports it (seconds: 2.2 s on 2 idle cores) in the workers, side by side, with
    their first batch, never in the task that maps the batches (bench/orchestration.py)."""
    from tasks.predict.inference import infer_videos

    return infer_videos(store, video_ids, task=task, **options)


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
