"""Scale-out path: a separate `dask scheduler` and two `dask worker` processes on loopback."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main
from tasks.analyse.warehouse import run_query
from tasks.store import Store

pytestmark = pytest.mark.slow
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scheduler(prefect_api, tmp_path):
    """Scheduler + 2 single-thread workers; they inherit PREFECT_API_URL from this process."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = open(tmp_path / "dask.log", "w")
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
            stdout=logs,
            stderr=logs,
        )
    ]
    procs += [
        subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
            stdout=logs,
            stderr=logs,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        logs.close()


def _frames(store: Path):
    return run_query(
        Store(store),
        "select v.path, f.* exclude (video_id) from frames f join videos v using (video_id) "
        "order by v.path, f.frame, f.face_id",
    ).to_pandas()


def test_existing_scheduler_gives_the_same_outputs_as_local_cluster(scheduler, media_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(media_dir / "pyfeat_single_face.mp4", corpus / "selfie.mp4")
    shutil.copy(media_dir / "metaloom_pexels-kindel-media-8164110.mp4", corpus / "closeup.mp4")
    remote, local = tmp_path / "remote", tmp_path / "local"
    assert main(["run", str(corpus), "--store", str(remote), "--dask-address", scheduler, "--chunk-seconds", "2"]) == 0
    assert main(["run", str(corpus), "--store", str(local), "--workers", "2", "--chunk-seconds", "2"]) == 0
    a, b = _frames(remote), _frames(local)
    assert len(a) > 0 and a["path"].nunique() == 2
    assert a.equals(b)
