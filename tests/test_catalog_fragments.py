"""The videos catalog is recorded one fragment per video (O(1)) and compacted at the end of a run: readers
(``Store.read_catalog`` and DuckDB's ``videos`` view) see what the whole rewrite after every video gave, and
a crash at any step loses nothing recorded and brings back nothing removed."""

import pandas as pd
import pyarrow as pa
import pytest

from tasks.analyse.warehouse import run_query
from tasks.store import VIDEO_COLUMNS, StepResult, Store, write_table_atomic

PARAMS = '{"fps": 5.0}'


def result(video_id: str, path: str, status: str = "ok", frames: int = 10) -> StepResult:
    r = StepResult(video_id, path, "extract", status=status, counts={"sampled_frames": frames, "face_rows": frames})
    r.info["probe"] = {"n_frames": 3 * frames, "fps": 25.0, "duration_s": frames / 5, "width": 64, "height": 48}
    r.info["decoder"] = "decord"
    return r if status == "ok" else r.fail("probe", "not_a_video", f"{path}: no video stream")


STEPS = [  # a run's records, a video recorded again (a retry, a re-extraction after a rename) included
    (result("a" * 16, "/c/a.mp4"), {"size_bytes": 100, "teacher": "t1"}),
    (result("b" * 16, "/c/b.mp4", "failed"), {"size_bytes": 5}),
    (result("c" * 16, "/c/c.mp4", frames=20), {"size_bytes": 300, "role": "teacher"}),
    (result("b" * 16, "/c/b.mp4", frames=7), {"size_bytes": 5}),
    (result("a" * 16, "/c/renamed.mp4", frames=11), {"size_bytes": 100, "teacher": "t2"}),
    (result("d" * 16, "/c/d.mp4"), {"size_bytes": 400}),
]


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    assert df["extracted_at"].notna().all()
    return df.drop(columns=["extracted_at"])  # the clock differs between the two stores


def old_record(store: Store):
    """The old code path: a whole rewrite of catalog/videos.parquet after every video."""
    return lambda table, rows: store.upsert_catalog(table, rows, key="video_id")


def test_fragments_give_the_catalog_the_whole_rewrites_gave(tmp_path):
    new, old = Store(tmp_path / "new").ensure(), Store(tmp_path / "old").ensure()
    old.record_catalog = old_record(old)
    for i, (step, meta) in enumerate(STEPS):
        for store in (new, old):
            store.record_video(step, meta, PARAMS, "run1")
        if i == 1:
            base = new.catalog_path("videos").stat()
    # after the first row, recording a video does not rewrite catalog/videos.parquet: it adds a fragment
    assert new.catalog_path("videos").stat().st_mtime_ns == base.st_mtime_ns
    assert len(new.catalog_fragments("videos")) == len(STEPS) - 1
    assert old.catalog_fragments("videos") == []
    expected = old.read_catalog("videos")
    assert list(expected.columns) == list(VIDEO_COLUMNS) and len(expected) == 4
    pd.testing.assert_frame_equal(comparable(new.read_catalog("videos")), comparable(expected))
    seen = run_query(new, "select * from videos order by video_id").to_pandas()
    want = run_query(old, "select * from videos order by video_id").to_pandas()
    pd.testing.assert_frame_equal(comparable(seen), comparable(want))
    assert new.compact_catalog("videos") == len(STEPS) - 1
    assert new.catalog_fragments("videos") == []
    pd.testing.assert_frame_equal(comparable(new.read_catalog("videos")), comparable(expected))


def test_a_crash_loses_nothing_recorded_and_brings_back_nothing_removed(tmp_path):
    store = Store(tmp_path / "store").ensure()
    for step, meta in STEPS[:3]:
        store.record_video(step, meta, PARAMS, "run1")
    # crash mid-run: the next process sees every recorded video and numbers its fragments after them
    again = Store(store.root)
    assert sorted(again.read_catalog("videos")["video_id"]) == ["a" * 16, "b" * 16, "c" * 16]
    again.record_video(*STEPS[5], PARAMS, "run2")
    assert len(again.catalog_fragments("videos")) == 3
    assert set(again.read_catalog("videos")["video_id"]) == {"a" * 16, "b" * 16, "c" * 16, "d" * 16}
    # crash inside a compaction: the union is in catalog/videos.parquet, the fragments are still there
    union = again.read_catalog("videos")
    write_table_atomic(pa.Table.from_pandas(union, preserve_index=False), again.catalog_path("videos"))
    assert len(again.catalog_fragments("videos")) == 3
    pd.testing.assert_frame_equal(again.read_catalog("videos"), union)
    duck = run_query(again, "select video_id, path from videos order by video_id").to_pylist()
    assert duck == union.sort_values("video_id")[["video_id", "path"]].to_dict("records")
    # erasing a video rewrites the catalog whole: the leftover fragments cannot bring its row back
    assert again.forget_video("c" * 16)["videos_rows"] == 1
    assert "c" * 16 not in set(Store(store.root).read_catalog("videos")["video_id"])
    assert run_query(again, f"select count(*) as n from videos where video_id = '{'c' * 16}'").to_pylist() == [{"n": 0}]
    assert again.catalog_fragments("videos") == []


def test_recording_rows_that_repeat_a_key_is_refused(tmp_path):
    store = Store(tmp_path / "store").ensure()
    rows = pd.DataFrame({"video_id": ["x", "x"], "path": ["/a", "/b"]})
    with pytest.raises(ValueError, match="repeat a video_id"):
        store.record_catalog("videos", rows)


def test_failures_and_runs_are_recorded_as_fragments_and_read_as_whole_rewrites_gave(tmp_path):
    store = Store(tmp_path / "store").ensure()
    started = pd.Timestamp("2026-12-01T10:00:00Z").to_pydatetime()
    for n in range(3):
        store.record_failures([step for step, _ in STEPS[:3]], f"run{n}")  # one failure row per call
        store.append_run(f"run{n}", started, PARAMS, {"found": 3, "failed": 1})
    first = store.catalog_path("failures").stat().st_mtime_ns
    assert [len(store.catalog_fragments(t)) for t in ("failures", "runs")] == [2, 2]  # after the first write
    assert store.catalog_path("failures").stat().st_mtime_ns == first
    failures, runs = store.read_catalog("failures"), store.read_catalog("runs")
    assert list(failures["run_id"]) == ["run0", "run1", "run2"] and set(failures["reason"]) == {"not_a_video"}
    assert list(runs["run_id"]) == ["run0", "run1", "run2"] and list(runs["videos_failed"]) == [1, 1, 1]
    # a compaction interrupted after writing the union: no row is seen twice, by pandas or DuckDB
    for table, df in (("failures", failures), ("runs", runs)):
        write_table_atomic(pa.Table.from_pandas(df, preserve_index=False), store.catalog_path(table))
    pd.testing.assert_frame_equal(store.read_catalog("failures"), failures)
    pd.testing.assert_frame_equal(store.read_catalog("runs"), runs)
    assert run_query(store, "select count(*) as n from failures").to_pylist() == [{"n": 3}]
    assert run_query(store, "select count(*) as n from runs").to_pylist() == [{"n": 3}]
    assert store.compact_catalogs() == 4
    assert store.catalog_fragments("failures") == store.catalog_fragments("runs") == []
    pd.testing.assert_frame_equal(store.read_catalog("failures"), failures)
    pd.testing.assert_frame_equal(store.read_catalog("runs"), runs)
