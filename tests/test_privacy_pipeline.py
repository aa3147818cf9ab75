"""Erasure that sticks, on a store built from the sample clips by the real pipeline (Prefect API, Dask).

After ``lessonlens forget`` every file under the store is searched, Parquet contents included (each file's
rows read back as text and bytes), for the erased video's id (its content hash) and path and for its face
crops' bytes. The ``erasures`` catalog table records the content hash by design, so it is the one file
left out of that search (and checked on its own: it holds no path).
"""

import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from models.rules import BODY_TASKS, TASK_CLASSES
from tasks.analyse.warehouse import run_query
from tasks.extract.discover import content_id
from tasks.store import Store

pytestmark = pytest.mark.slow
DAY = 86400.0


def write_clip(path: Path, *sources: tuple[Path, int, bool], frames: int = 60) -> Path:
    """An H.264 clip whose frames are the given clips' frames (from ``start``, mirrored when asked) side by side."""
    import av
    import decord

    readers = [(decord.VideoReader(str(src)), start, mirror) for src, start, mirror in sources]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        first = [r[0].shape for r, _, _ in readers]
        stream.height, stream.width = first[0][0], sum(s[1] for s in first)
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            parts = []
            for reader, start, mirror in readers:
                image = reader[min(start + i, len(reader) - 1)].asnumpy()
                parts.append(image[:, ::-1] if mirror else image)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.concatenate(parts, axis=1)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("corpus")
    single, wolfgang = media_dir / "pyfeat_single_face.mp4", media_dir / "pyfeat_WolfgangLanger_Pexels.mp4"
    shutil.copy(single, folder / "teacher.mp4")
    write_clip(folder / "pair.mp4", (single, 0, False), (wolfgang, 300, False))  # two people side by side
    write_clip(folder / "pupils.mp4", (single, 0, True))  # a students' video
    (folder / "manifest.csv").write_text("path,role\nteacher.mp4,teacher\npair.mp4,teacher\npupils.mp4,students\n")
    return folder


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory, prefect_api):
    root = tmp_path_factory.mktemp("store") / "store"
    assert main(["run", str(corpus), "--store", str(root), "--workers", "2"]) == 0
    return Store(root)


def video_id(store: Store, name: str) -> str:
    (row,) = run_query(store, f"select video_id from videos where path like '%/{name}'").to_pylist()
    return row["video_id"]


def contents(path: Path) -> bytes:
    """A file's bytes, and for Parquet its rows as text plus every binary value (decompressed)."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        table = pq.ParquetFile(path).read()
        data += repr(table.to_pylist()).encode() + repr(table.schema.metadata).encode()
        for column in table.columns:
            if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
                data += b"".join(v for v in column.to_pylist() if v)
    return data


def find(store: Store, needles: list[bytes]) -> list[str]:
    """Files (and file names) under the store that contain any of ``needles``; the erasures table is left out."""
    hits = []
    for path in sorted(p for p in store.root.rglob("*") if p.is_file()):
        if path == store.catalog_path("erasures"):
            continue
        data = contents(path) + str(path.relative_to(store.root)).encode()
        hits += [f"{path.relative_to(store.root)}: {n[:24]!r}" for n in needles if n in data]
    return hits


def tail(jpeg: bytes) -> bytes:
    """Entropy-coded bytes at the end of a JPEG: unique to the image (its start is headers shared by all)."""
    return jpeg[-120:-2]


def crops_of(store: Store, video: str, face_id: int | None = None) -> list[bytes]:
    table = pq.read_table(store.partition("crops", video))
    return [c for c, f in zip(table["jpeg"].to_pylist(), table["face_id"].to_pylist(), strict=True)
            if face_id is None or f == face_id]  # fmt: skip


def test_students_videos_keep_no_crops_by_default_and_the_store_is_owner_only(store):
    assert store.has_partition("crops", video_id(store, "teacher.mp4"))
    assert store.has_partition("crops", video_id(store, "pair.mp4"))
    pupils = video_id(store, "pupils.mp4")
    assert store.has_partition("frames", pupils) and not store.has_partition("crops", pupils)
    assert run_query(store, f"select count(*) as n from frames where video_id = '{pupils}'").to_pylist()[0]["n"] > 0
    for path in store.root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_forgetting_one_face_track_removes_that_person_and_keeps_the_other(store, capsys):
    pair = video_id(store, "pair.mp4")
    assert store.face_ids(pair) == [0, 1]
    gone, kept = crops_of(store, pair, 1), crops_of(store, pair, 0)
    assert gone and kept
    counts = {t: run_query(store, f"select count(*) as n from predictions where task = '{t}' and video_id = '{pair}'")
              .to_pylist()[0]["n"] for t in TASK_CLASSES}  # fmt: skip
    training_clip = store.root / "cache" / "clips" / pair / "face-params" / "face.parquet"  # lessonlens train's
    training_clip.parent.mkdir(parents=True)
    training_clip.write_bytes(gone[0])
    assert main(["forget", "--store", str(store.root), "--video-id", pair, "--face-id", "1"]) == 0
    assert "erasure recorded" in capsys.readouterr().out
    assert store.face_ids(pair) == [0]
    assert not training_clip.exists() and pair in store.training_exclusions()  # training skips the video now
    assert crops_of(store, pair, 1) == [] and crops_of(store, pair) == kept
    rows = run_query(store, f"select task, face_id from predictions where video_id = '{pair}'").to_pylist()
    assert {r["face_id"] for r in rows} == {0}
    face_tasks = [t for t in TASK_CLASSES if t not in BODY_TASKS]  # gesture: per body person, no model here
    assert all(0 < sum(r["task"] == t for r in rows) < counts[t] for t in face_tasks)
    (video,) = run_query(store, f"select face_tracks from videos where video_id = '{pair}'").to_pylist()
    assert video["face_tracks"] == 1
    assert find(store, [tail(c) for c in gone]) == []
    assert find(store, [tail(kept[0])])  # the search does find crops that are there
    assert main(["forget", "--store", str(store.root), "--video-id", pair, "--face-id", "1"]) == 0  # idempotent
    assert "already erased" in capsys.readouterr().out
    assert main(["forget", "--store", str(store.root), "--video-id", pair, "--face-id", "7"]) == 2
    assert "face_id" in capsys.readouterr().err


def test_forgetting_a_video_leaves_no_file_that_names_it(store, corpus, capsys):
    teacher = video_id(store, "teacher.mp4")
    path = str((corpus / "teacher.mp4").resolve())
    assert content_id(corpus / "teacher.mp4") == teacher
    crops = crops_of(store, teacher)
    needles = [teacher.encode(), path.encode(), *(tail(c) for c in crops)]
    assert find(store, needles)  # before: everywhere
    assert main(["forget", "--store", str(store.root), "--path", str(corpus / "teacher.mp4")]) == 0
    assert "erasure recorded" in capsys.readouterr().out
    assert find(store, needles) == []
    erasures = store.read_catalog("erasures")
    assert list(erasures.columns) == ["video_id", "scope", "face_id", "action", "recorded_at"]
    assert teacher in set(erasures["video_id"]) and path.encode() not in contents(store.catalog_path("erasures"))
    before = {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(["forget", "--store", str(store.root), "--video-id", teacher]) == 0  # idempotent
    assert "already erased; removed: nothing left to remove" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_forget_refuses_bad_input_and_waits_for_no_one(store, capsys):
    assert main(["forget", "--store", str(store.root), "--video-id", "../etc"]) == 2
    assert "--video-id" in capsys.readouterr().err
    assert main(["forget", "--store", str(store.root), "--path", "/no/such/video.mp4"]) == 2
    assert "--path" in capsys.readouterr().err
    with store.writer_lock("a test run"):
        assert main(["forget", "--store", str(store.root), "--video-id", "0123456789abcdef"]) == 3
    assert "being written by a test run" in capsys.readouterr().err
    assert "0123456789abcdef" not in store.erased_videos()


def test_a_nightly_rerun_leaves_erasures_in_place_and_applies_retention(store, corpus, capsys):
    teacher = content_id(corpus / "teacher.mp4")
    pair = video_id(store, "pair.mp4")
    frames_before = store.partition("frames", pair).stat().st_mtime_ns
    old = time.time() - 6 * DAY
    os.utime(store.partition("crops", pair), (old, old))
    assert main(["run", str(corpus), "--store", str(store.root), "--workers", "2", "--crops-retention-days", "5"]) == 0
    assert "0 extracted, 2 already done" in capsys.readouterr().out
    (run,) = run_query(store, "select * from runs order by started_at desc limit 1").to_pylist()
    assert (run["videos_found"], run["videos_extracted"]) == (2, 0)
    assert find(store, [teacher.encode(), str((corpus / "teacher.mp4").resolve()).encode()]) == []
    assert store.face_ids(pair) == [0] and store.partition("frames", pair).stat().st_mtime_ns == frames_before
    assert not store.has_partition("crops", pair)  # 6 days old, predictions current: past the 5-day limit
    assert main(["run", str(corpus), "--store", str(store.root), "--crops-retention-days", "-1"]) == 2
    assert "crops_retention_days" in capsys.readouterr().err


def test_undo_lets_the_next_run_extract_the_video_again(store, corpus, capsys):
    assert main(["forget", "--store", str(store.root), "--path", str(corpus / "teacher.mp4"), "--undo"]) == 0
    assert "erasure undone" in capsys.readouterr().out
    pair = video_id(store, "pair.mp4")  # its face track 1 was erased above: the undo brings it back
    assert main(["forget", "--store", str(store.root), "--video-id", pair, "--face-id", "1", "--undo"]) == 0
    assert "erasure undone" in capsys.readouterr().out
    assert main(["run", str(corpus), "--store", str(store.root), "--workers", "2"]) == 0
    assert "2 extracted" in capsys.readouterr().out
    assert store.has_partition("frames", content_id(corpus / "teacher.mp4"))
    assert store.face_ids(pair) == [0, 1]
