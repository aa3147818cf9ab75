"""The per-video finalize writes its crops a chunk at a time (bench/scaling.py: a worker's memory no longer
grows with the video's crops), and the rows come out as a whole-table sort put them: real clip, real decoding."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.extract.video import in_order
from tasks.store import write_parts_atomic, write_table_atomic


def test_in_order_gives_the_concatenation_in_any_order_a_file_at_a_time(tmp_path):
    sizes = (3, 0, 4, 2)
    paths = []
    for k, n in enumerate(sizes):
        path = tmp_path / f"part-{k}.parquet"
        write_table_atomic(pa.table({"v": pa.array(np.arange(n) + 10 * k, pa.int32())}), path)
        paths.append(path)
    whole = pa.concat_tables([pq.read_table(p) for p in paths])
    rng = np.random.default_rng(0)
    for order in (np.arange(whole.num_rows), rng.permutation(whole.num_rows), np.array([4, 5, 0, 1, 8, 2])):
        parts = [part for _, part in in_order(paths, order)]
        assert pa.concat_tables(parts)["v"].to_pylist() == whole.take(order)["v"].to_pylist()
    assert len(list(in_order(paths, np.arange(whole.num_rows)))) == 3  # consecutive files: one table each
    positions = [rows.tolist() for rows, _ in in_order(paths, np.array([4, 0, 1]))]
    assert positions == [[0], [1, 2]]


def test_parts_are_written_as_row_groups_of_one_file(tmp_path):
    schema = pa.schema([("v", pa.int32())])
    path = tmp_path / "p.parquet"
    write_parts_atomic((pa.table({"v": pa.array([k, k], pa.int32())}) for k in range(3)), schema, path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert pq.read_table(path)["v"].to_pylist() == [0, 0, 1, 1, 2, 2]
    write_parts_atomic(iter(()), schema, tmp_path / "empty.parquet")
    assert pq.read_table(tmp_path / "empty.parquet").schema == schema
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*.tmp"))


def test_a_video_of_several_chunks_keeps_crops_and_body_in_the_frames_order(media_dir, tmp_path):
    from tasks.extract.discover import VideoRef
    from tasks.extract.video import ExtractParams, extract_chunk, extract_video
    from tasks.store import Store

    video = media_dir / "pyfeat_WolfgangLanger_Pexels.mp4"
    store = Store(tmp_path / "store").ensure()
    params = ExtractParams(fps=2, chunk_seconds=3, body_fps=1)
    ref = VideoRef("wl", str(video), video.stat().st_size, 0, {})
    result = extract_video(ref, params, store, lambda jobs: list(map(extract_chunk, jobs)))
    assert result.status == "ok"
    frames = pq.read_table(store.partition("frames", "wl"), columns=["frame", "bbox_x", "face_id"])
    crops = pq.read_table(store.partition("crops", "wl"), columns=["frame", "bbox_x", "face_id"])
    assert frames.num_rows > 20 and crops.equals(frames)  # row i of crops is row i of frames
    assert pq.ParquetFile(store.partition("crops", "wl")).metadata.num_row_groups == 7  # 20 s in chunks of 3 s
    body = pq.read_table(store.partition("body", "wl"))
    assert body.num_rows == result.counts["body_rows"] > 0
    assert np.all(np.diff(body["frame"].to_numpy()) > 0)
