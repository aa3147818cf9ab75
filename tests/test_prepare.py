"""Clip preparation for training: each content extracted once, drops with reasons, what the fingerprint sees."""

import shutil
from dataclasses import replace

from models.datasets import Clip, ClipSet
from tasks.predict.prepare import ExtractionParams, prepare, prepare_set


def test_cache_extracts_each_content_once(tmp_path, face_clip):
    copies = [tmp_path / f"{k}.mp4" for k in range(3)]
    for path in copies:
        shutil.copyfile(face_clip, path)
    clips = [Clip(str(k), p, 0, "train") for k, p in enumerate(copies)] + [Clip("x", tmp_path / "no.mp4", 0, "train")]
    cached = prepare(clips, tmp_path / "cache", "face")
    assert len({c.path for c in cached[:3]}) == 1 and cached[0].frames == 6  # the 5-fps grid, then the last frame
    assert cached[3].path is None and cached[3].reason == "missing_file"
    assert len(list((tmp_path / "cache").rglob("*.parquet"))) == 1


def test_prepared_set_fingerprint_follows_content_labels_and_parameters(tmp_path, face_clip):
    shutil.copyfile(face_clip, tmp_path / "a.mp4")
    shutil.copyfile(face_clip, tmp_path / "b.mp4")
    dataset = ClipSet("clips", ("x", "y"), [Clip("a", tmp_path / "a.mp4", 0, "train")])
    prepared = prepare_set(dataset, tmp_path / "cache", "face", ExtractionParams(fps=4.0))
    assert prepared.view == "face" and prepared.params == {**vars(ExtractionParams()), "fps": 4.0}
    assert [c.frames for c in prepared.split("train")] == [5] and prepared.split("test") == []
    renamed = replace(dataset, clips=[Clip("b", tmp_path / "b.mp4", 0, "train")])
    assert prepare_set(renamed, tmp_path / "cache", "face", ExtractionParams(fps=4.0)).fingerprint() == (
        prepared.fingerprint()
    )  # same bytes under another name: the same data
    relabelled = replace(dataset, clips=[Clip("a", tmp_path / "a.mp4", 1, "train")])
    other_fps = prepare_set(dataset, tmp_path / "cache", "face", ExtractionParams(fps=2.0))
    for other in (prepare_set(relabelled, tmp_path / "cache", "face", ExtractionParams(fps=4.0)), other_fps):
        assert other.fingerprint() != prepared.fingerprint()


def test_an_erased_video_is_dropped_unread_and_never_cached(tmp_path, face_clip):
    from tasks.extract.discover import content_id

    shutil.copyfile(face_clip, tmp_path / "a.mp4")
    clips = [Clip("a", tmp_path / "a.mp4", 0, "train")]
    (cached,) = prepare(clips, tmp_path / "cache", "face", erased={content_id(face_clip)})
    assert (cached.path, cached.reason) == (None, "erased")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.parquet"))
