"""A store and a corpus on object storage, against a real S3 API (``tests/s3.py``: moto's server on 127.0.0.1).

Dask workers are separate ``dask worker`` processes, each in its own working directory, attached to a
``LocalCluster``'s scheduler: they share no disk with the flow and have no path to the corpus, which exists
only in the bucket. A second process with its own home and caches reads what the run wrote.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from flows.cli import main
from models.files import atomic_write
from tasks.analyse.warehouse import QueryRefused, run_query
from tasks.store import Store, StoreBusy, write_table_atomic
from tests.s3 import s3_server

BIN = Path(sys.executable).parent
BUCKET = "lessons"
CORPUS = f"s3://{BUCKET}/corpus"


@pytest.fixture(scope="module")
def s3():
    with s3_server(buckets=(BUCKET, "elsewhere")) as url:
        yield s3fs.S3FileSystem(use_listings_cache=False, endpoint_url=url)


def lessonlens(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 600):
    """``lessonlens ARGS`` in a new process with its own home, caches and temporary folder."""
    home = tmp_path / f"home-{time.monotonic_ns()}"
    (home / "tmp").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "TMPDIR": str(home / "tmp"),
           **(env or {})}  # fmt: skip
    return subprocess.run([BIN / "lessonlens", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_store_urls_options_and_credentials_are_checked(s3, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"store ftp://x/y: unknown URL scheme ftp://"):
        Store("ftp://x/y")
    with pytest.raises(ValueError, match="names no bucket"):
        Store("s3:///prefix")
    with pytest.raises(PermissionError, match="bucket no-such-bucket does not exist"):
        Store("s3://no-such-bucket/store").ensure()
    for option, named in (
        ("secret=hunter2", "--storage-option secret: credentials are not taken"),
        ("aws_secret_access_key=hunter2", "--storage-option aws_secret_access_key"),
        ("endpoint_url", "--storage-option 'endpoint_url' is not KEY=VALUE"),
    ):
        assert main(["query", "--store", f"s3://{BUCKET}/x", "--storage-option", option, "select 1"]) == 2
        err = capsys.readouterr().err
        assert named in err and "hunter2" not in err and len(err.strip().splitlines()) == 1
    assert main(["run", "s3://no-such-bucket/lessons", "--store", str(tmp_path / "store")]) == 2
    assert "parameter corpus: s3://no-such-bucket/lessons does not exist" in capsys.readouterr().err


def test_a_file_appears_whole_or_not_at_all(s3):
    store = Store(f"s3://{BUCKET}/whole").ensure()
    table = pa.table({"a": np.arange(100_000)})
    target = store.root / "frames" / "video_id=x" / "part-0.parquet"

    def dies_half_way(tmp: Path) -> None:
        tmp.write_bytes(b"PAR1" + b"\0" * 1000)
        raise OSError("killed while writing")

    with pytest.raises(OSError, match="killed while writing"):
        atomic_write(target, dies_half_way)
    assert not s3.exists(target.path)
    write_table_atomic(table, target)
    assert store.video_ids() == ["x"]
    assert pq.read_table(target.path, filesystem=s3).equals(table)


def test_the_lease_admits_one_writer_is_renewed_and_expires_after_a_kill(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLENS_STORE_LEASE_SECONDS", "6")  # renewed every 2 s
    url = f"s3://{BUCKET}/leased"
    first, second = Store(url).ensure(), Store(url)
    with first.writer_lock("run A"):
        with pytest.raises(StoreBusy, match=r"being written by run A \(pid \d+"):
            second.check_not_busy()
        time.sleep(8)  # longer than the lease: renewed meanwhile, so still held
        with pytest.raises(StoreBusy, match="run A"), second.writer_lock("run B"):
            pass
    assert not s3.exists(f"{BUCKET}/leased/.lease.json")  # released
    with second.writer_lock("run B"):
        pass

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom tasks.store import Store\n"
         f"with Store({url!r}).writer_lock('run C'):\n    print('held', flush=True)\n    time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with pytest.raises(StoreBusy, match="run C"):  # a killed writer's lease holds until it expires...
        second.check_not_busy()
    time.sleep(6.5)
    with second.writer_lock("run D"):  # ...and no longer
        assert b"run D" in s3.cat_file(f"{BUCKET}/leased/.lease.json")

    # a writer paused past its lease (a frozen VM) learns that it lost the store when it wakes up
    paused = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom tasks.store import Store, StoreBusy\ntry:\n"
         f"    with Store({url!r}).writer_lock('run E'):\n        print('held', flush=True)\n        time.sleep(6)\n"
         "except StoreBusy as exc:\n    print(exc, flush=True)\n"],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    assert paused.stdout.readline().strip() == "held"
    paused.send_signal(signal.SIGSTOP)
    time.sleep(6.5)
    with second.writer_lock("run F"):
        paused.send_signal(signal.SIGCONT)
        out, _ = paused.communicate(timeout=60)
    assert "the writer's lease was lost during the run" in out


def test_query_and_analyse_on_the_remote_store_match_the_local_store(s3, tmp_path):
    from tests.test_analyse import outcomes_frame
    from tests.test_marts import write_lesson_store

    local = write_lesson_store(tmp_path / "store")
    remote = write_lesson_store(f"s3://{BUCKET}/lesson-store")
    s3.copy(f"{BUCKET}/lesson-store/frames/video_id=v00/part-0.parquet", f"{BUCKET}/lesson-store-secret/frames.parquet")
    outcomes = tmp_path / "outcomes.csv"
    outcomes_frame().to_csv(outcomes, index=False)
    sql = "select video_id, frame, face_id, AU12_r from frames order by all"
    assert run_query(remote, sql).equals(run_query(local, sql))
    for sneaky in (
        f"select * from read_parquet('s3://{BUCKET}/lesson-store-secret/frames.parquet')",  # a sibling prefix
        "select * from read_parquet('s3://elsewhere/x.parquet')",  # another bucket
        f"select * from read_parquet('s3://{BUCKET}/lesson-store/../lesson-store-secret/frames.parquet')",
        "select * from read_csv('/etc/passwd')",
    ):
        with pytest.raises(Exception, match="Permission Error") as caught:
            run_query(remote, sneaky)
        assert not isinstance(caught.value, QueryRefused)  # DuckDB's sandbox refused it, not our statement check
    from tasks.analyse.analysis import analyse_store

    here, there = analyse_store(local, outcomes), analyse_store(remote, outcomes)
    for dv, result in here.results.items():
        pd.testing.assert_frame_equal(result.table, there.results[dv].table)
    assert str(there.report).startswith(f"s3://{BUCKET}/lesson-store/reports/")
    assert s3.exists(there.report.path) and s3.exists(f"{there.report.parent.path}/video_ids.json")


def test_forget_erases_a_video_and_a_face_track_on_the_remote_store(s3):
    from tests.test_marts import write_lesson_store

    store = write_lesson_store(f"s3://{BUCKET}/forget-store")
    with store.writer_lock("forget"):
        assert store.forget_video("v00")["predictions"] == 3
        assert store.forget_face("v01", 0)["frames_rows"] > 0
    assert "v00" not in store.video_ids() and s3.glob(f"{BUCKET}/forget-store/*/*/*/video_id=v00") == []
    assert store.face_ids("v01") == [1] and store.erased_videos() == {"v00"}


class DaskWorkers:
    """A LocalCluster's scheduler with ``n`` ``dask worker`` processes attached, each started in its own working
    directory (and Dask local directory): no shared disk with this process but the one-way view of the code."""

    def __init__(self, root: Path, n: int = 2):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=":0", host="127.0.0.1")
        self.folders = [root / f"worker-{i}" for i in range(n)]
        self.procs = []
        for folder in self.folders:
            folder.mkdir(parents=True)
            log = open(folder / "worker.log", "w")
            args = [BIN / "dask", "worker", self.cluster.scheduler_address, "--nthreads", "1", "--nworkers", "1",
                    "--local-directory", str(folder / "dask"), "--no-dashboard"]  # fmt: skip
            self.procs.append(subprocess.Popen(args, cwd=folder, stdout=log, stderr=log, start_new_session=True))
        with Client(self.cluster) as client:
            client.wait_for_workers(n, timeout=120)
            self.cwds = sorted(client.run(os.getcwd).values())

    @property
    def address(self) -> str:
        return self.cluster.scheduler_address

    def close(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        self.cluster.close()


@pytest.fixture(scope="module")
def corpus(s3, tmp_path_factory):
    """Two clips and a manifest, uploaded to the bucket; their local files are deleted."""
    from tasks.synthetic.media import animate, face_photos, write_video

    folder = tmp_path_factory.mktemp("upload")
    astronaut = face_photos()["astronaut"]
    write_video(folder / "a" / "lesson1.mp4", animate(astronaut, 3.0, 8.0, seed=1, size=(320, 180)), 8.0)
    write_video(folder / "lesson2.mp4", animate(astronaut, 2.0, 8.0, seed=2, size=(320, 180)), 8.0)
    (folder / "manifest.csv").write_text("path,session,teacher,role\na/lesson1.mp4,s1,t1,teacher\n")
    s3.put(str(folder) + "/", CORPUS + "/", recursive=True)
    local = tmp_path_factory.mktemp("local-corpus")
    s3.get(CORPUS + "/", str(local) + "/", recursive=True)  # the same bytes, for the local store to compare with
    for path in sorted(folder.rglob("*.mp4")):
        path.unlink()
    return local


@pytest.fixture(scope="module")
def workers(tmp_path_factory, prefect_api):
    dask = DaskWorkers(tmp_path_factory.mktemp("cluster"))
    yield dask
    dask.close()


@pytest.mark.slow
def test_nightly_corpus_with_corpus_and_store_on_s3(s3, corpus, workers, tmp_path):
    from flows.nightly_corpus import nightly_corpus

    assert len(set(workers.cwds)) == 2 and all(str(corpus) not in cwd for cwd in workers.cwds)
    store = f"s3://{BUCKET}/store"
    first = nightly_corpus(corpus=CORPUS, store=store, dask_address=workers.address, crops_retention_days=None)
    assert (first["found"], first["extracted"], first["failed"]) == (2, 2, 0)
    again = nightly_corpus(corpus=CORPUS, store=store, dask_address=workers.address, crops_retention_days=None)
    assert (again["extracted"], again["skipped"]) == (0, 2)
    files = Store(store).read_catalog("files")
    assert files["version"].notna().all() and files["path"].str.startswith(CORPUS).all()  # cached by ETag

    local = tmp_path / "local-store"
    assert main(["run", str(corpus), "--store", str(local), "--workers", "1"]) == 0
    sql = "select v.session, v.size_bytes, f.* from frames f join videos v using (video_id) order by all"
    here = lessonlens(tmp_path, "query", "--store", str(local), "--format", "csv", sql)
    there = lessonlens(tmp_path, "query", "--store", store, "--format", "csv", sql)
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    assert there.stdout == here.stdout and len(there.stdout.splitlines()) > 20  # the same rows, to the byte
    status = lessonlens(tmp_path, "status", "--store", store)
    assert status.returncode == 0 and "ok" in status.stdout
    assert s3.find(f"{BUCKET}/store/work") == []  # chunk fragments removed once their video was finalized
    assert not s3.exists(f"{BUCKET}/store/.lease.json")


@pytest.mark.slow
def test_reprocess_after_a_promotion_on_s3(s3, corpus, workers):
    import torch

    from flows.reprocess import reprocess
    from models import build_model
    from models.registry import promote, register
    from models.rules import TASK_CLASSES
    from tests.tiny import TINY_AGDTNET

    store = Store(f"s3://{BUCKET}/store")
    if not store.catalog_path("videos").is_file():
        pytest.fail("needs the store of test_nightly_corpus_with_corpus_and_store_on_s3 (run the module)")
    torch.manual_seed(0)
    model = build_model("learner_state", "paper", num_classes=4, **TINY_AGDTNET)
    version = register(store.root, "learner_state", model, variant="paper", metrics={}, data_fingerprint="test",
                       task="learner_state", classes=list(TASK_CLASSES["learner_state"]))  # fmt: skip
    promote(store.root, "learner_state", version, notify=False)
    counts = reprocess(store=store.url, task="learner_state", dask_address=workers.address)
    assert counts["failed"] == 0 and counts["windows"] > 0
    rows = run_query(store, "select distinct model_version from predictions where task = 'learner_state'")
    assert rows.to_pylist() == [{"model_version": f"learner_state-{version}"}]


@pytest.mark.slow
def test_a_run_killed_mid_way_is_resumed_without_loss_or_duplicates(s3, corpus, tmp_path):
    store = f"s3://{BUCKET}/store-killed"
    lease = {"LESSONLENS_STORE_LEASE_SECONDS": "20"}
    run = ["run", CORPUS, "--store", store, "--workers", "2", "--chunk-seconds", "1", "--no-crops"]
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = {**os.environ, **lease, "HOME": str(home), "TMPDIR": str(home / "tmp")}
    env.pop("PREFECT_API_URL", None)  # its own temporary API, killed with it
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([BIN / "lessonlens", *run], env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 300
    while not s3.glob(f"{BUCKET}/store-killed/work/*/*/faces-*.parquet"):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Prefect API and its Dask workers, at once
    proc.wait()
    killed_at = time.monotonic()
    done = Store(store).read_catalog("videos")
    assert (done["status"] == "ok").sum() < 2  # it really died mid-run

    busy = lessonlens(tmp_path, *run, env=lease)  # within the dead run's lease: refused, naming that run
    assert time.monotonic() - killed_at < 20 and busy.returncode == 3 and "nightly-corpus run" in busy.stderr
    time.sleep(max(0.0, 20.5 - (time.monotonic() - killed_at)))
    again = lessonlens(tmp_path, *run, env=lease)
    assert again.returncode == 0, again.stderr
    sql = "select v.path, f.* exclude (video_id) from frames f join videos v using (video_id) order by all"
    resumed = run_query(Store(store), sql)
    uninterrupted = f"s3://{BUCKET}/store-uninterrupted"
    assert lessonlens(tmp_path, *run[:2], "--store", uninterrupted, *run[4:]).returncode == 0
    assert resumed.equals(run_query(Store(uninterrupted), sql))  # nothing lost, nothing twice
    assert s3.find(f"{BUCKET}/store-killed/work") == [] and not s3.exists(f"{BUCKET}/store-killed/.lease.json")
