"""The exit-code contract of the CLI, one row per kind of outcome (README: "Exit codes").

0 done; 1 finished but some videos failed (extraction or inference); 2 bad arguments or input, with a
message naming the parameter or file; 3 the store is being written by another run; 4 a bug, with the
traceback in a file whose path the one-line message gives.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

import flows.cli
from flows.cli import main
from models.registry import promote
from tasks.store import Store
from tests.test_inference import register_tiny, write_frames


@pytest.fixture
def setup(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    store = Store(tmp_path / "store").ensure()
    store.write_catalog("videos", pd.DataFrame([{"video_id": "v1", "path": "/gone.mp4", "status": "ok"}]))
    (tmp_path / "empty-au-model").mkdir()
    (tmp_path / "not-a-dir").write_text("x")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("student_id,session_id,pretest,score\ns1,x,1,2\n")
    return {"corpus": str(corpus), "store": str(store.root), "tmp": str(tmp_path), "outcomes": str(outcomes)}


ROWS = [
    # (arguments, exit code, words the one-line message must contain)
    (["run", "{tmp}/nope", "--store", "{store}"], 2, ["corpus", "nope"]),
    (["run", "{corpus}", "--store", "{store}", "--face-model-dir", "{tmp}"], 2, ["face_model_dir", "mediapipe"]),
    (["run", "{corpus}", "--store", "{store}", "--face-backend", "insightface"], 2, ["face_model_dir", "insightface"]),
    (["run", "{corpus}", "--store", "{store}", "--face-backend", "dlib"], 2, ["face_backend", "dlib"]),
    (["run", "{corpus}", "--store", "{store}", "--au-model-dir", "{tmp}/empty-au-model"], 2, ["au_model_dir"]),
    (["run", "{corpus}", "--store", "{store}", "--fps", "0"], 2, ["fps"]),
    (["run", "{corpus}", "--store", "{store}", "--body-fps", "9"], 2, ["body_fps"]),
    (["run", "{corpus}", "--store", "{store}", "--chunk-seconds", "0"], 2, ["chunk_seconds"]),
    (["run", "{corpus}", "--store", "{store}", "--descriptor-seconds", "-1"], 2, ["descriptor_seconds"]),
    (["run", "{corpus}", "--store", "{store}", "--workers", "0"], 2, ["workers"]),
    (["run", "{corpus}", "--store", "{store}", "--workers", "2", "--dask-address", "tcp://x:1"], 2, ["workers"]),
    (["run", "{corpus}", "--store", "{tmp}/not-a-dir/store"], 2, ["store"]),
    (["query", "--store", "{store}", "select nope from videos"], 2, ["nope"]),
    (["query", "--store", "{store}", "copy videos to 'x.csv'"], 2, ["read-only"]),
    (["query", "--store", "{tmp}/missing", "select 1"], 2, ["missing"]),
    (["status", "--store", "{tmp}/missing"], 2, ["missing"]),
    (["analyse", "--store", "{store}", "--outcomes", "{tmp}/none.csv"], 2, ["none.csv"]),
    (["analyse", "--store", "{store}", "--outcomes", "{outcomes}", "--threshold", "x=1"], 2, ["'x'"]),
    (
        ["ancova", "--data", "{outcomes}", "--dv", "nope", "--between", "session_id", "--covariate", "pretest"],
        2,
        ["nope"],
    ),  # fmt: skip
    (["query", "--store", "{store}", "select count(*) as n from videos"], 0, []),
]


@pytest.mark.parametrize(("arguments", "code", "words"), ROWS, ids=[" ".join(r[0][:3]) + f"->{r[1]}" for r in ROWS])
def test_bad_arguments_and_input_exit_2_with_one_line_naming_the_problem(setup, capsys, arguments, code, words):
    assert main([a.format(**setup) for a in arguments]) == code
    err = capsys.readouterr().err
    if code:
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert all(word in err for word in words), err


def test_a_busy_store_exits_3(setup, capsys):
    store = Store(setup["store"])
    with store.writer_lock("another run"):
        assert main(["run", setup["corpus"], "--store", setup["store"]]) == 3
    assert "another run" in capsys.readouterr().err


def test_a_bug_exits_4_with_the_traceback_in_a_named_file(setup, capsys, monkeypatch):
    """A bug cannot be produced on demand from outside: this row replaces the status handler with one that
    raises, the only fake in this file."""

    def broken(args):
        raise ZeroDivisionError("division by zero in a handler")

    monkeypatch.setattr(flows.cli, "_status", broken)
    assert main(["status", "--store", setup["store"]]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err
    log = Path(err.split("traceback is in ")[1].strip())
    assert "broken" in log.read_text() and "Traceback" in log.read_text()
    log.unlink()


@pytest.mark.slow
def test_runs_exit_1_when_extraction_or_inference_fails_and_0_when_all_is_done(setup, media_dir, prefect_api, capsys):
    corpus, store = Path(setup["corpus"]), Store(setup["store"])
    (corpus / "notes.mp4").write_text("not a video\n" * 20)
    assert main(["run", str(corpus), "--store", str(store.root), "--workers", "1"]) == 1  # extraction failed
    failures = store.read_catalog("failures")
    assert failures["reason"].tolist() == ["not_a_video"]

    (corpus / "notes.mp4").unlink()
    write_frames(store, "v1", {0: (8, {})})  # extracted earlier; its video is gone and no crops were kept
    promote(store.root, "learner_state", register_tiny(store.root))  # predictions now need the crops
    assert main(["run", str(corpus), "--store", str(store.root), "--workers", "1"]) == 1  # inference failed
    last = store.read_catalog("failures").iloc[-1]
    assert (last["stage"], last["reason"], last["video_id"]) == ("infer", "missing_file", "v1")

    shutil.rmtree(store.partition("frames", "v1").parent)
    assert main(["run", str(corpus), "--store", str(store.root), "--workers", "1"]) == 0


def test_the_lock_lessonlens_run_hands_to_its_flow_is_never_open_to_another_writer(tmp_path):
    import threading

    from tasks.store import StoreBusy

    store, other = Store(tmp_path / "store").ensure(), Store(tmp_path / "store")
    with store.writer_lock("nightly-corpus run (lessonlens run starting)", hand_over=True):
        with pytest.raises(StoreBusy, match="lessonlens run starting"):
            other.check_not_busy()
        refused = []
        thread = threading.Thread(target=lambda: refused.append(_refused(other)))  # another context
        thread.start()
        thread.join()
        assert refused == [True]
        with other.writer_lock("nightly-corpus run abc123"):  # the flow's own lock: taken over, renamed
            with pytest.raises(StoreBusy, match="nightly-corpus run abc123"):
                other.check_not_busy()
            with pytest.raises(StoreBusy), other.writer_lock("a second writer inside the flow"):
                pass
    with other.writer_lock("the next run"):  # released at the end
        pass


def _refused(store) -> bool:
    from tasks.store import StoreBusy

    try:
        with store.writer_lock("a writer in another thread"):
            return False
    except StoreBusy:
        return True
