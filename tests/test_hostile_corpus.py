"""Hostile and careless corpora (issue 26): file names that are not UTF-8 or hold a newline, entries named like
videos that are no regular files, and what ``forget`` and the temporary Prefect API leave behind."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import prefect
import pytest

from flows.cli import main
from tasks.extract.discover import discover, local_video
from tasks.store import FILE_COLUMNS, StepResult, Store, empty_frame

ROOT = Path(__file__).resolve().parents[1]
BAD = os.fsdecode(b"lesson \xff\xfe.mp4")  # not UTF-8: Python keeps the bytes as lone surrogates


def odd_entries(folder: Path) -> dict[str, str]:
    """Entries named like videos that are no readable regular files, with the words their failure names."""
    (folder / "folder.mp4").mkdir()
    os.mkfifo(folder / "pipe.mp4")
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    (folder / "gone.mp4").symlink_to(folder / "unmounted" / "lesson.mp4")
    return {"folder.mp4": "a directory", "pipe.mp4": "a FIFO", "loop.mp4": "loop", "gone.mp4": "dangling"}


def test_every_entry_named_like_a_video_that_is_no_readable_file_is_named(tmp_path):
    expected = odd_entries(tmp_path)
    (tmp_path / "real.mp4").write_bytes(b"a lesson")
    refs, _, unreadable = discover(tmp_path, empty_frame(FILE_COLUMNS))
    assert [Path(r.path).name for r in refs] == ["real.mp4"]
    named = {Path(path).name: message for path, message in unreadable}
    assert set(named) == set(expected)
    for name, words in expected.items():
        assert name in named[name] and words in named[name], named[name]


def test_a_file_name_that_is_not_utf8_is_discovered_recorded_and_read(tmp_path, face_clip):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / BAD).write_bytes(face_clip.read_bytes())
    refs, files, _ = discover(corpus, empty_frame(FILE_COLUMNS))
    (ref,) = refs
    store = Store(tmp_path / "store").ensure()
    store.upsert_catalog("files", files, key="path")
    store.record_video(StepResult(ref.video_id, ref.path, "extract", status="ok"), {}, "{}", "r1")
    failed = StepResult(ref.video_id, ref.path, "extract").fail("decode", "decode_error", f"{ref.path}: broken")
    store.record_failures([failed], "r1")
    shown = str(corpus / "lesson \\xff\\xfe.mp4")
    assert list(store.read_catalog("files")["path"]) == [shown]
    assert list(store.read_catalog("videos")["path"]) == [shown]
    assert list(store.read_catalog("failures")["message"]) == [f"{shown}: broken"]
    # the cache knows the file by that name: not hashed again
    again, _, _ = discover(corpus, store.read_catalog("files"))
    assert again[0].video_id == ref.video_id
    import decord

    with local_video(ref.path, ref.video_id) as path:
        assert len(decord.VideoReader(path)) == len(decord.VideoReader(str(face_clip)))


def test_a_run_names_odd_entries_handles_any_name_and_forget_leaves_no_trace(
    tmp_path, face_clip, prefect_api, capsys
):  # fmt: skip
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / BAD).write_bytes(face_clip.read_bytes())
    (corpus / "line\nbreak.mp4").write_bytes(face_clip.read_bytes()[:-9] + b"different")
    odd_entries(corpus)
    store = tmp_path / "store"
    assert main(["run", str(corpus), "--store", str(store), "--workers", "1"]) == 1  # the odd entries failed
    st = Store(store)
    failures = st.read_catalog("failures")
    assert sorted(Path(p).name for p in failures["path"]) == ["folder.mp4", "gone.mp4", "loop.mp4", "pipe.mp4"]
    videos = st.read_catalog("videos")
    assert sorted(Path(p).name for p in videos["path"]) == ["lesson \\xff\\xfe.mp4", "line\nbreak.mp4"]
    assert set(videos["status"]) == {"ok"}
    out, err = capsys.readouterr()
    assert not [line for line in (out + err).splitlines() if line.startswith("break.mp4")]  # no split log line
    # a run over the file itself records it as the run's corpus; forget removes that name too
    assert main(["run", str(corpus / BAD), "--store", str(store)]) == 0
    assert main(["forget", "--store", str(store), "--path", str(corpus / BAD)]) == 0
    assert main(["forget", "--store", str(store), "--path", str(corpus / "gone.mp4")]) == 0
    left = pd.concat([st.read_catalog(t).astype(str) for t in ("runs", "failures", "videos", "files")])
    text = left.to_csv()
    assert "lesson \\xff" not in text and "gone.mp4" not in text


def test_a_corpus_of_dangling_links_exits_1_not_0(tmp_path, prefect_api):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (corpus / name).symlink_to(tmp_path / "unmounted" / name)
    assert main(["run", str(corpus), "--store", str(tmp_path / "store"), "--workers", "1"]) == 1
    assert len(Store(tmp_path / "store").read_catalog("failures")) == 2


def test_the_temporary_prefect_api_keeps_nothing_in_prefect_home_or_the_cache(tmp_path):
    # the API's database starts as a copy of an empty one kept in the cache (flows.engine.empty_database): that
    # one holds Prefect's schema only, never a run
    home, cache = tmp_path / "home", tmp_path / "cache"
    script = (
        "from prefect import flow\n"
        "from flows.engine import prefect_api\n"
        "@flow(name='lesson-of-teacher-x')\n"
        "def f(path: str) -> str:\n"
        "    return path\n"
        "with prefect_api():\n"
        "    f('/lessons/teacher-x.mp4')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(home), "XDG_CACHE_HOME": str(cache)}
    env.pop("PREFECT_API_URL", None)
    for _ in range(2):  # the first run makes the empty database, the second copies it
        subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    assert not (home / "prefect.db").exists()
    assert [p.name for p in (cache / "lessonlens").iterdir()] == [f"prefect-{prefect.__version__}-empty.db"]
    for path in [*home.rglob("*"), *cache.rglob("*")]:
        assert not path.is_file() or b"teacher-x" not in path.read_bytes(), path


@pytest.mark.parametrize("name", ["lesson [1].mp4", "it's*?.mp4", "ünï cödé.mp4"])
def test_forget_by_path_finds_names_with_glob_and_sql_characters(tmp_path, name, capsys):
    store = Store(tmp_path / "store").ensure()
    path = tmp_path / name
    path.write_bytes(b"x")
    store.record_failures([StepResult(None, str(path), "extract").fail("discover", "unreadable", "gone")], "r1")
    assert main(["forget", "--store", str(store.root), "--path", str(path)]) == 0
    assert store.read_catalog("failures").empty
