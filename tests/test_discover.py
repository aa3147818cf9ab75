import pandas as pd
import pytest

import tasks.extract.discover as discover_module
from tasks.extract.discover import discover, list_videos, read_manifest
from tasks.store import FILE_COLUMNS, empty_frame


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_ids_follow_content_not_names(tmp_path):
    a = _write(tmp_path / "a.mp4", b"lesson one")
    _write(tmp_path / "sub" / "b.MOV", b"lesson two")
    _write(tmp_path / "notes.txt", b"not a video")
    _write(tmp_path / ".hidden" / "c.mp4", b"skipped")
    refs, _, _ = discover(tmp_path, empty_frame(FILE_COLUMNS))
    assert [r.path.rsplit("/", 1)[-1] for r in refs] == ["a.mp4", "b.MOV"]
    before = {r.path.rsplit("/", 1)[-1]: r.video_id for r in refs}
    a.rename(tmp_path / "renamed.mp4")
    _write(tmp_path / "sub" / "b.MOV", b"lesson two, edited")
    refs, _, _ = discover(tmp_path, empty_frame(FILE_COLUMNS))
    after = {r.path.rsplit("/", 1)[-1]: r.video_id for r in refs}
    assert after["renamed.mp4"] == before["a.mp4"]
    assert after["b.MOV"] != before["b.MOV"]


def test_unchanged_files_are_not_hashed_again(tmp_path, monkeypatch):
    _write(tmp_path / "a.mp4", b"lesson one")
    refs, files, _ = discover(tmp_path, empty_frame(FILE_COLUMNS))
    monkeypatch.setattr(discover_module, "content_id", lambda path: pytest.fail(f"re-hashed {path}"))
    again, _, _ = discover(tmp_path, files)
    assert again == refs


def test_manifest_metadata_and_errors(tmp_path):
    _write(tmp_path / "a.mp4", b"x")
    (tmp_path / "manifest.csv").write_text("path,teacher,role\na.mp4,t07,teacher\n")
    refs, _, _ = discover(tmp_path, empty_frame(FILE_COLUMNS))
    assert refs[0].meta == {"teacher": "t07", "role": "teacher"}
    (tmp_path / "manifest.csv").write_text("path,teachr\na.mp4,t07\n")
    with pytest.raises(ValueError, match=r"manifest.csv: unknown columns \['teachr'\]"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("video,teacher\na.mp4,t07\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_manifest(tmp_path)


def test_missing_corpus_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_videos(tmp_path / "nowhere")
    assert isinstance(empty_frame(FILE_COLUMNS), pd.DataFrame)


def test_an_unreadable_file_is_named_and_the_others_are_discovered(tmp_path, monkeypatch):
    # root (as in CI) reads a chmod-000 file, so the permission error is raised where the file is read
    _write(tmp_path / "a.mp4", b"lesson one")
    _write(tmp_path / "locked.mp4", b"lesson two")
    real = discover_module.content_id

    def content_id(path):
        if path.name == "locked.mp4":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(discover_module, "content_id", content_id)
    refs, files, unreadable = discover(tmp_path, empty_frame(FILE_COLUMNS))
    assert [r.path.rsplit("/", 1)[-1] for r in refs] == ["a.mp4"]
    assert list(files["path"]) == [refs[0].path]  # not cached: the next run reads it again
    ((path, message),) = unreadable
    assert path.endswith("locked.mp4") and "locked.mp4: cannot read the file (Permission denied)" in message
