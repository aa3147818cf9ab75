"""End to end: real files, real decord, a real Prefect API, a real Dask LocalCluster, real DuckDB."""

import shutil

import numpy as np
import pytest

from flows.cli import main
from tasks.analyse.warehouse import run_query
from tasks.store import Store
from tests.videos import presentation_times, truncated_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", folder / "wolfgang.mp4")
    shutil.copy(media_dir / "pyfeat_no_face.mp4", folder / "title_card.mp4")
    (folder / "bad").mkdir()
    (folder / "bad" / "zero.mp4").write_bytes(b"")
    (folder / "bad" / "notes.mp4").write_text("not a video\n" * 50)
    truncated_copy(media_dir / "pyfeat_single_face.mp4", folder / "bad" / "cut.mp4", keep=0.5)
    (folder / "manifest.csv").write_text("path,teacher,role\nwolfgang.mp4,t01,teacher\n")
    return folder


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory, prefect_api):
    store = tmp_path_factory.mktemp("store")
    code = main(["run", str(corpus), "--store", str(store), "--fps", "5", "--workers", "2"])
    assert code == 1  # finished, but some videos failed: the exit code says so
    return store


def q(store, sql):
    return run_query(Store(store), sql).to_pylist()


def test_faces_are_found_and_tracked_on_a_real_clip(store):
    (video,) = q(store, "select * from videos where path like '%wolfgang.mp4'")
    assert video["status"] == "ok" and video["teacher"] == "t01"
    assert video["sampled_frames"] == 100  # 19.7 s at 5 fps: grid 0, 0.2, …, 19.6, then the last frame
    assert video["frames_with_face"] >= 0.95 * video["sampled_frames"]
    ids = q(
        store,
        "select distinct face_id from frames where video_id = (select video_id from videos "
        "where path like '%wolfgang.mp4')",
    )
    assert ids == [{"face_id": 0}]


def test_timestamps_are_the_decoded_frames_presentation_times(store, corpus):
    shown = np.array(presentation_times(corpus / "wolfgang.mp4"))
    rows = q(
        store,
        "select f.frame, f.timestamp from frames f join videos v using (video_id) "
        "where v.path like '%wolfgang.mp4' order by frame",
    )
    stamps = np.array([r["timestamp"] for r in rows])
    assert np.abs(stamps[:, None] - shown[None, :]).min(axis=1).max() < 1e-5
    assert all(r["timestamp"] == pytest.approx(shown[r["frame"]], abs=1e-5) for r in rows)


def test_no_face_video_gives_no_rows_and_no_failure(store):
    (video,) = q(store, "select * from videos where path like '%title_card.mp4'")
    assert video["status"] == "ok" and video["face_rows"] == 0 and video["sampled_frames"] > 0
    assert q(store, f"select count(*) as n from frames where video_id = '{video['video_id']}'") == [{"n": 0}]


def test_bad_files_are_failures_with_reasons_and_do_not_stop_the_corpus(store):
    failures = {r["path"].rsplit("/", 1)[-1]: r for r in q(store, "select * from failures")}
    assert failures["zero.mp4"]["reason"] == "empty_file"
    assert failures["notes.mp4"]["reason"] == "not_a_video"
    assert failures["cut.mp4"]["reason"] in {"not_a_video", "decode_error"}
    assert all("mp4" in r["message"] for r in failures.values())
    (run,) = q(store, "select * from runs")
    assert (run["videos_found"], run["videos_extracted"], run["videos_failed"]) == (5, 2, 3)


def test_body_keypoints_and_action_units_are_written(store):
    (body,) = q(store, "select count(*) as n, min(nose_v) as v from body")
    assert body["n"] > 0
    (aus,) = q(store, "select min(AU12_r) as lo, max(AU12_r) as hi, max(AU12_c) as c from frames")
    assert 0 <= aus["lo"] <= aus["hi"] <= 5


def test_second_run_extracts_nothing_and_follows_renames(store, corpus, capsys):
    before = {p: p.stat().st_mtime_ns for p in (store / "frames").rglob("*.parquet")}
    (corpus / "wolfgang.mp4").rename(corpus / "wolfgang_renamed.mp4")
    code = main(["run", str(corpus), "--store", str(store), "--workers", "2"])
    assert code == 0  # the bad files failed before with the same bytes: not probed again, not new failures
    last = q(store, "select * from runs order by started_at desc limit 1")[0]
    assert (last["videos_skipped"], last["videos_known_failed"], last["videos_extracted"]) == (2, 3, 0)
    assert last["videos_failed"] == 0
    assert {p: p.stat().st_mtime_ns for p in (store / "frames").rglob("*.parquet")} == before
    assert q(store, "select count(*) as n from videos where path like '%wolfgang_renamed.mp4'") == [{"n": 1}]
    out = capsys.readouterr().out
    assert "2 already done" in out and "3 files failed in an earlier run" in out
    assert main(["status", "--store", str(store)]) == 0
    listed = capsys.readouterr().out.split("known-bad files")[1]
    assert all(name in listed for name in ("zero.mp4", "notes.mp4", "cut.mp4"))


def test_known_bad_files_are_tried_again_on_request(store, corpus):
    failures_before = len(q(store, "select * from failures"))
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2", "--retry-failed"]) == 1
    last = q(store, "select * from runs order by started_at desc limit 1")[0]
    assert (last["videos_known_failed"], last["videos_failed"]) == (0, 3)
    assert len(q(store, "select * from failures")) == failures_before + 3


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--fps", "0", "fps"),
        ("--face-backend", "opencv", "face_backend"),
        ("--face-model-dir", "/no/pack", "face_model_dir"),
    ],
)
def test_bad_parameters_fail_at_once_naming_them(store, corpus, capsys, option, value, named):
    runs_before = len(q(store, "select * from runs"))
    assert main(["run", str(corpus), "--store", str(store), option, value]) == 2
    assert named in capsys.readouterr().err
    assert len(q(store, "select * from runs")) == runs_before


def test_a_second_writer_is_refused_while_a_run_holds_the_store(store, corpus, capsys):
    from tasks.store import Store

    with Store(store).writer_lock("a test run"):
        assert main(["run", str(corpus), "--store", str(store)]) == 3
    assert "being written by a test run" in capsys.readouterr().err


def test_query_cli_formats_and_refuses_writes(store, capsys):
    assert main(["query", "--store", str(store), "--format", "csv", "select status from videos order by 1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "status"
    assert main(["query", "--store", str(store), "copy videos to 'x.csv'"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["status", "--store", str(store)]) == 0
    assert "empty_file" in capsys.readouterr().out
