"""Small jobs feel small: a rerun with nothing to do starts no Dask cluster and no flow, and changes nothing
but the run record; the catalog a run records one fragment at a time is the one whole rewrites gave.
Real files, a real Prefect API, a real Dask LocalCluster."""

import hashlib
import shutil

import pandas as pd
import pytest

from flows import engine
from flows.cli import main
from tasks.analyse.warehouse import run_query
from tasks.store import VIDEO_COLUMNS, Store
from tests.videos import truncated_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(media_dir / "pyfeat_single_face.mp4", folder / "face.mp4")
    shutil.copy(media_dir / "pyfeat_no_face.mp4", folder / "title.mp4")
    truncated_copy(media_dir / "pyfeat_single_face.mp4", folder / "cut.mp4", keep=0.3)
    (folder / "manifest.csv").write_text("path,teacher,role\nface.mp4,t01,teacher\n")
    return folder


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory, prefect_api):
    store = tmp_path_factory.mktemp("store")
    clusters = engine.STARTED["dask_cluster"]
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 1  # cut.mp4 fails
    assert engine.STARTED["dask_cluster"] == clusters + 1  # the counter sees a real run's cluster
    return store


def snapshot(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def catalog(store) -> pd.DataFrame:
    df = Store(store).read_catalog("videos")
    return df.drop(columns=["run_id", "extracted_at"]).sort_values("video_id").reset_index(drop=True)


def test_the_catalog_equals_what_whole_rewrites_recorded(store, corpus, tmp_path, monkeypatch):
    new = Store(store)
    assert new.catalog_fragments("videos") == []  # compacted at the end of the run
    old_store = tmp_path / "old"
    monkeypatch.setattr(Store, "record_catalog", lambda self, table, rows: self.upsert_catalog(table, rows, "video_id"))
    assert main(["run", str(corpus), "--store", str(old_store), "--workers", "2"]) == 1
    old = Store(old_store).read_catalog("videos")
    assert list(old.columns) == list(new.read_catalog("videos").columns) == list(VIDEO_COLUMNS)
    assert len(old) == 3 and set(old["status"]) == {"ok", "failed"}
    pd.testing.assert_frame_equal(catalog(store), catalog(old_store))


def test_a_rerun_with_nothing_to_do_starts_nothing_and_changes_only_the_run_record(store, corpus, capsys):
    capsys.readouterr()
    before = snapshot(store)
    runs_before = len(Store(store).read_catalog("runs"))
    started = dict(engine.STARTED)
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    assert engine.STARTED == started  # neither a Dask cluster nor a Prefect API
    out = capsys.readouterr().out
    assert "nothing to do" in out and "2 already done" in out and "1 files failed in an earlier run" in out
    after = snapshot(store)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {"catalog/runs.parquet"}
    runs = Store(store).read_catalog("runs")
    assert len(runs) == runs_before + 1
    last = runs.iloc[-1]
    assert (last["videos_found"], last["videos_skipped"], last["videos_known_failed"]) == (3, 2, 1)
    assert (last["videos_extracted"], last["videos_failed"]) == (0, 0) and pd.isna(last["flow_run_id"])


def test_a_rename_is_recorded_without_a_cluster_and_new_work_runs_the_flow(store, corpus, media_dir):
    started = dict(engine.STARTED)
    (corpus / "title.mp4").rename(corpus / "title_card.mp4")
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    assert engine.STARTED == started
    paths = run_query(Store(store), "select path from videos where status = 'ok' order by path").to_pylist()
    assert [p["path"].rsplit("/", 1)[1] for p in paths] == ["face.mp4", "title_card.mp4"]
    shutil.copy(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", corpus / "new.mp4")
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    assert engine.STARTED["dask_cluster"] == started["dask_cluster"] + 1
    last = run_query(Store(store), "select * from runs order by started_at desc limit 1").to_pylist()[0]
    assert (last["videos_extracted"], last["videos_skipped"]) == (1, 2) and last["flow_run_id"]


def test_a_file_replaced_in_place_is_counted_once_by_its_new_content(store, corpus, media_dir, capsys):
    st = Store(store)
    old = dict(zip(st.read_catalog("videos")["path"], st.read_catalog("videos")["video_id"], strict=True))
    face, cut = str((corpus / "face.mp4").resolve()), str((corpus / "cut.mp4").resolve())
    shutil.copy(media_dir / "cremad" / "1001_DFA_HAP_XX.flv", corpus / "face.mp4")  # re-exported lesson
    shutil.copy(media_dir / "cremad" / "1001_DFA_NEU_XX.flv", corpus / "cut.mp4")  # the broken file, mended
    capsys.readouterr()
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    assert "2 videos' earlier results removed" in capsys.readouterr().out
    videos = st.read_catalog("videos")
    assert videos["path"].is_unique and set(videos["status"]) == {"ok"} and len(videos) == 4
    now = dict(zip(videos["path"], videos["video_id"], strict=True))
    assert now[face] != old[face] and now[cut] != old[cut]
    assert sorted(st.video_ids("frames")) == sorted(now.values())  # the old content's partition is gone
    rows = run_query(st, "select v.path, count(*) as n from frames f join videos v using (video_id) group by 1")
    per_path = {r["path"]: r["n"] for r in rows.to_pylist()}
    assert per_path[face] == videos.loc[videos["path"] == face, "face_rows"].item()
    assert not list(store.glob(f"predictions/*/*/video_id={old[face]}"))
    assert main(["status", "--store", str(store)]) == 0
    assert "cut.mp4" not in capsys.readouterr().out.split("known-bad files")[1]


def test_an_unreadable_file_fails_alone_and_is_read_again_next_run(store, corpus, media_dir, monkeypatch, capsys):
    import tasks.extract.discover

    shutil.copy(media_dir / "cremad" / "1001_DFA_ANG_XX.flv", corpus / "locked.flv")
    real = tasks.extract.discover.content_id

    def content_id(path):  # root (as in CI) reads a chmod-000 file: the permission error is raised here
        if path.name == "locked.flv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(tasks.extract.discover, "content_id", content_id)
    before = snapshot(store / "frames")
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 1
    assert snapshot(store / "frames") == before
    (failure,) = run_query(Store(store), "select * from failures where reason = 'unreadable'").to_pylist()
    assert failure["path"].endswith("locked.flv") and "Permission denied" in failure["message"]
    assert failure["video_id"] is None and failure["stage"] == "discover"
    last = Store(store).read_catalog("runs").iloc[-1]
    assert (last["videos_found"], last["videos_skipped"], last["videos_failed"]) == (5, 4, 1)
    monkeypatch.undo()
    assert main(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    (video,) = run_query(Store(store), "select * from videos where path like '%locked.flv'").to_pylist()
    assert video["status"] == "ok"


def test_chunks_started_ahead_of_the_flow_are_joined_by_it_not_extracted_twice(tmp_path, media_dir):
    from distributed import Client

    from flows.nightly_corpus import discover_task, extract_params
    from tasks.extract.video import chunks_ahead, extract_chunk

    st = Store(tmp_path / "store")
    refs = discover_task.fn(str(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4"), st)[0]
    params = extract_params(5.0, 10, "mediapipe", None, 1.0, None, True, 30.0)
    planned = chunks_ahead([(refs[0], params)], st, 10)
    assert len(planned) == 3  # a 20 s clip in chunks of about 10 s that start at keyframes
    with engine.local_cluster(**engine.local_cluster_kwargs(1)) as cluster, Client(cluster) as client:
        engine.head_start(cluster, lambda n: chunks_ahead([(refs[0], params)], st, n))  # one worker: 2 chunks
        # the flow's submission of the same chunks while they run (model loads alone take a second)
        results = client.gather(client.map(extract_chunk, planned, key=[job.key for job in planned]))
        processed = {
            job.key: sum(t[2] == "processing" for t in cluster.scheduler.story(job.key) if len(t) > 2)
            for job in planned
        }
    assert processed == {job.key: 1 for job in planned}  # each chunk computed once, on the head start's task
    assert all(r.seconds > 0 and r.sampled > 0 for r in results)  # the results of that computation, not a reuse
    assert all(job.is_done() for job in planned)
