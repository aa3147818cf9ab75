"""Day-to-day use: a real local Prefect server, `lessonlens serve`, deployments run by name, reprocessing
triggered by a model promotion event, and a serving process killed in the middle of a run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from models import build_model, faceapi_package
from models.registry import promote, register
from models.rules import TASK_CLASSES
from tasks.analyse.warehouse import run_query
from tasks.store import Store
from tasks.synthetic.media import make_demo_corpus
from tests.tiny import TINY_AGDTNET

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TINY_LEARNER = {**TINY_AGDTNET, "num_classes": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, prefect_api):
    """`prefect server start` on a free loopback port with its own home; yields the environment to use it.

    Depends on the session's temporary API so that this process's Prefect settings are first read without
    this server's URL, whichever test module runs first (tests here point at the server only temporarily).
    """
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=log, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        _wait(healthy, 120, "the Prefect server")
        yield {**env, "PREFECT_API_URL": url}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


class Serving:
    """`lessonlens serve` as a separate process group (so that a kill takes its flow runs with it)."""

    def __init__(self, env: dict, store: Path, corpus: Path, log: Path):
        self.log = open(log, "a")
        args = [BIN / "lessonlens", "serve", "--store", str(store), "--corpus", str(corpus), "--workers", "2"]
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log, start_new_session=True)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.log.close()


def _prefect(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "prefect", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _run_deployment(env: dict, corpus: Path, store: Path) -> None:
    """`prefect deployment run nightly-corpus/nightly-corpus -p ... --watch`, retried until it is served."""
    args = ["deployment", "run", "nightly-corpus/nightly-corpus", "-p", f"corpus={corpus}", "-p", f"store={store}"]
    _wait(lambda: _prefect(env, "deployment", "inspect", "nightly-corpus/nightly-corpus").returncode == 0,
          120, "the served deployment")  # fmt: skip
    done = _prefect(env, *args, "--watch")
    assert done.returncode == 0 and "Completed" in done.stdout, done.stdout + done.stderr


def _q(store: Path, sql: str) -> list[dict]:
    return run_query(Store(store), sql).to_pylist()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("lessons")
    make_demo_corpus(folder)
    shutil.copy(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", folder / "wolfgang.mp4")
    return folder


def test_nightly_deployment_then_promotion_triggers_reprocessing(server, corpus, tmp_path, monkeypatch):
    store = tmp_path / "store"
    serving = Serving(server, store, corpus, tmp_path / "serve.log")
    try:
        _run_deployment(server, corpus, store)
        videos = _q(store, "select * from videos")
        assert len(videos) == 5 and all(v["status"] == "ok" for v in videos)
        before = _q(store, "select distinct task, model_name, model_version from predictions order by task")
        assert [r["task"] for r in before] == ["emotion", "emotion_rules", "learner_state"]
        assert before[0]["model_name"] == faceapi_package.MODEL_NAME  # the default emotion stream: the net
        assert all("rule baseline" in r["model_name"] for r in before[1:])

        torch.manual_seed(0)
        model = build_model("learner_state", "paper", **TINY_LEARNER)
        version = register(store, "learner_state", model, variant="paper", metrics={}, data_fingerprint="test",
                           task="learner_state", classes=list(TASK_CLASSES["learner_state"]))  # fmt: skip
        monkeypatch.setenv("PREFECT_API_URL", server["PREFECT_API_URL"])

        def reprocessed():
            rows = _q(store, "select distinct model_version from predictions where task = 'learner_state'")
            return rows == [{"model_version": f"learner_state-{version}"}]

        # reprocessing must not decode a video whose crops are stored: move those videos away meanwhile
        # (the students' videos keep no crops by default, so they are decoded again and stay in place)
        stored = [Path(v["path"]) for v in videos if Store(store).has_partition("crops", v["video_id"])]
        assert stored and len(stored) < len(videos)
        for path in stored:
            path.rename(path.with_name(path.name + ".away"))
        try:
            promote(store, "learner_state", version)  # emits lessonlens.model.registered
            _wait(reprocessed, 240, "the reprocess-after-retraining run", interval=3)
            _wait(lambda: len(_q(store, "select * from runs")) == 2, 60, "the reprocess run record", interval=1)
        finally:
            for path in stored:
                path.with_name(path.name + ".away").rename(path)
        emotion = _q(store, "select distinct model_version from predictions where task = 'emotion'")
        assert emotion == [{"model_version": before[0]["model_version"]}]  # untouched task
        (last,) = _q(store, "select run_id from runs order by started_at desc limit 1")
        # decoding a moved-away video would have failed as missing_file: its stored crops served
        assert _q(store, f"select * from failures where run_id = '{last['run_id']}'") == []
        per_video = _q(store, "select count(distinct video_id) as n from predictions where task = 'learner_state'")
        assert per_video == [{"n": 5}]
    finally:
        serving.kill()


def test_killing_the_serving_process_mid_run_leaves_no_duplicate_or_partial_rows(server, corpus, tmp_path):
    store = tmp_path / "store"
    serving = Serving(server, store, corpus, tmp_path / "serve.log")
    args = ["deployment", "run", "nightly-corpus/nightly-corpus", "-p", f"corpus={corpus}", "-p", f"store={store}"]
    _wait(lambda: _prefect(server, "deployment", "inspect", "nightly-corpus/nightly-corpus").returncode == 0,
          120, "the served deployment")  # fmt: skip
    assert _prefect(server, *args).returncode == 0  # not watched: we kill it while it works

    def some_videos_done():
        path = store / "catalog" / "videos.parquet"
        return path.is_file() and 0 < len(_q(store, "select * from videos where status = 'ok'")) < 5

    _wait(some_videos_done, 240, "the first extracted videos", interval=0.5)
    serving.kill()  # the serving process, its flow run and the flow run's Dask workers, at once
    assert len(_q(store, "select * from videos where status = 'ok'")) < 5  # it really died mid-run

    serving = Serving(server, store, corpus, tmp_path / "serve.log")
    try:
        _run_deployment(server, corpus, store)
    finally:
        serving.kill()
    videos = _q(store, "select * from videos")
    assert len(videos) == 5 and all(v["status"] == "ok" for v in videos)
    dupes = _q(store, "select video_id, frame, face_id, count(*) as n from frames group by all having n > 1")
    assert dupes == []
    counts = _q(store, "select v.video_id, v.face_rows, count(f.frame) as n from videos v "
                       "left join frames f using (video_id) group by all")  # fmt: skip
    assert all(r["face_rows"] == r["n"] for r in counts)  # every partition is whole
    assert not list(store.rglob("*.tmp")) and not list((store / "work").iterdir())
    windows = _q(store, "select task, video_id, face_id, window_index, count(*) as n from predictions group by all "
                        "having n > 1")  # fmt: skip
    assert windows == []
