"""A store written before ``tasks/`` was split into stages (and ``Store`` into modules) reads and updates as
before. ``tests/fixtures/legacy_store`` was written by the code of commit 263109f (``tasks/store.py`` as one
module): two extracted videos (the first recorded in ``videos.parquet``, the second as a catalog fragment not
yet compacted), their frames and ``emotion`` predictions by ``rules-0001``, a ``not_a_video`` failure, one run,
and an erased face track (face 1 of the second video)."""

import json
import shutil
from pathlib import Path

import pytest

from tasks.store import StepResult, Store, read_table

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_store"
FIRST, SECOND = "0123456789abcdef", "fedcba9876543210"


@pytest.fixture
def legacy(tmp_path) -> Store:
    shutil.copytree(FIXTURE, tmp_path / "store")
    return Store(tmp_path / "store")


def test_the_catalog_of_a_legacy_store_reads_with_its_uncompacted_fragment(legacy):
    videos = legacy.read_catalog("videos").set_index("video_id")
    assert sorted(videos.index) == [FIRST, SECOND]  # the fragment's row is there
    assert videos.loc[SECOND, "session"] == "s1" and videos.loc[FIRST, "face_rows"] == 4
    (failure,) = legacy.read_catalog("failures").to_dict("records")
    assert (failure["video_id"], failure["reason"]) == ("00000000deadbeef", "not_a_video")
    (run,) = legacy.read_catalog("runs").to_dict("records")
    assert (run["run_id"], run["videos_extracted"], run["frames_analysed"]) == ("run-1", 2, 8)
    assert legacy.video_ids() == [FIRST, SECOND]
    assert legacy.erased_face_tracks() == {SECOND: {1}} and legacy.erased_videos() == set()


def test_a_legacy_store_is_updated_by_the_new_code(legacy):
    legacy.ensure()
    with legacy.writer_lock("new-writer"):
        result = StepResult("aaaaaaaaaaaaaaaa", "/lessons/new.mp4", "extract", status="ok", counts={"face_rows": 0})
        legacy.record_video(result, {"session": "s9"}, json.dumps({"fps": 5}), "run-2")
        assert legacy.compact_catalogs() == 2  # the legacy fragment and the one the new record made
        assert not legacy.catalog_fragments("videos")
        assert sorted(legacy.read_catalog("videos")["video_id"]) == [FIRST, "aaaaaaaaaaaaaaaa", SECOND]
        # a new model version makes both videos stale; the legacy predictions are replaced video by video
        assert legacy.stale_videos("emotion", "rules-0002") == [FIRST, SECOND]
        table = read_table(legacy.prediction_path("emotion", "rules-0001", FIRST))
        legacy.write_predictions(table, "emotion", "rules-0002", FIRST)
        assert not legacy.prediction_path("emotion", "rules-0001", FIRST).exists()
        assert legacy.stale_videos("emotion", "rules-0002") == [SECOND]
        removed = legacy.forget_video(SECOND)
    assert removed["frames"] == 1 and not legacy.has_partition("frames", SECOND)
    assert legacy.erased_videos() == {SECOND}
    assert SECOND not in set(legacy.read_catalog("videos")["video_id"])
