"""decord fails, PyAV decodes: phone-style HEVC clips and damaged packets lose no video (issue #11 part 3).

The clips are real files written with PyAV, then damaged by zeroing whole packets (found with PyAV's
demuxer, so the damage is the same on every run). No decoder is mocked.
"""

from pathlib import Path

import numpy as np
import pytest

from tasks.extract.decode import (
    ChunkDecode,
    VideoError,
    decode_chunk,
    decode_frames,
    decode_with_pyav,
    frame_times,
    open_video,
    plan_chunks,
    probe,
    video_decoding,
)
from tests.videos import rotated_copy, write_vfr

SIZE = (192, 108)  # coded width, height


def grey(i: int) -> int:
    return (7 * i) % 230 + 10


def write_clip(path: Path, times_ms: list[int], codec: str, options: dict, rotation: int | None = None) -> Path:
    """Frame i is uniform grey ``grey(i)`` with a white bar, shown at ``times_ms[i]``."""
    return write_vfr(path, times_ms, SIZE, codec=codec, options=options, rotation=rotation, shade=grey, edge=True)


def packets(path: Path) -> list[dict]:
    """Every video packet: byte position, size, presentation time and the picture type PyAV decodes."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rows = [
            {"pos": p.pos, "size": p.size, "pts": p.pts, "time": float(p.pts * p.time_base)}
            for p in container.demux(stream)
            if p.size
        ]
    with av.open(str(path)) as container:
        types = {f.pts: av.video.frame.PictureType(f.pict_type).name for f in container.decode(video=0)}
    for row in rows:
        row["type"] = types.get(row["pts"])
    return rows


def zero_packets(path: Path, target: Path, chosen: list[dict]) -> Path:
    data = bytearray(path.read_bytes())
    for p in chosen:
        data[p["pos"] : p["pos"] + p["size"]] = bytes(p["size"])
    target.write_bytes(bytes(data))
    return target


def pyav_display(path: Path) -> dict[float, np.ndarray]:
    """Presentation time → upright RGB pixels of every frame PyAV decodes in one sequential pass."""
    import av

    out = {}
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames = packet.decode()
            except av.InvalidDataError:  # a zeroed packet: its frame is not shown
                continue
            for frame in frames:
                pixels = frame.to_ndarray(format="rgb24")
                out[float(frame.time)] = np.rot90(pixels, round(frame.rotation / 90) % 4)
    return out


def decode_all(path: Path, fps: float = 5) -> tuple[list, list[ChunkDecode], list]:
    reader = open_video(path)
    chunks = plan_chunks(frame_times(reader), fps=fps, chunk_seconds=1)
    decoded, reports = [], []
    for chunk in chunks:
        report = ChunkDecode()
        decoded += list(decode_chunk(path, open_video(path), chunk, report))
        reports.append(report)
    return chunks, reports, decoded


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory) -> Path:
    """HEVC .mov, variable frame rate, display rotation 90°, B-frames (so an edit list), 169 frames; the
    packets of six non-reference B-frames between 2 and 3 s are zeroed. None of them is sampled at 5 fps,
    so every sampled frame is decodable, but a decoder that reads through them gets errors."""
    folder = tmp_path_factory.mktemp("phone")
    steps = np.random.default_rng(1).choice([16, 25, 33, 34, 40, 50], size=168)
    times_ms = np.concatenate([[0], np.cumsum(steps)]).tolist()
    params = "log-level=error:bframes=2:b-pyramid=0:keyint=30:min-keyint=30:scenecut=0:open-gop=0:frame-threads=1"
    clean = write_clip(folder / "clean.mov", times_ms, "libx265", {"x265-params": params}, rotation=90)
    reader = open_video(clean)
    sampled = {f for c in plan_chunks(frame_times(reader), fps=5, chunk_seconds=1) for f in c.frames}
    base = packets(clean)
    order = sorted(range(len(base)), key=lambda k: base[k]["pts"])  # display order = decord's frame index
    index_of = {base[k]["pts"]: i for i, k in enumerate(order)}
    victims = [p for p in base if p["type"] == "B" and 2.0 <= p["time"] < 3.0 and index_of[p["pts"]] not in sampled]
    assert len(victims) >= 4, victims
    return zero_packets(clean, folder / "phone.mov", victims[:6])


@pytest.fixture(scope="module")
def damaged_clip(tmp_path_factory) -> Path:
    """H.264 .mp4, 25 fps, 150 frames, a keyframe every second; the whole GOP 2.00-2.96 s is zeroed."""
    folder = tmp_path_factory.mktemp("damaged")
    options = {"g": "25", "keyint_min": "25", "sc_threshold": "0", "bf": "0"}
    clean = write_clip(folder / "clean.mp4", [40 * i for i in range(150)], "libx264", options)
    victims = [p for p in packets(clean) if 2.0 <= p["time"] < 3.0]
    assert len(victims) == 25
    return zero_packets(clean, folder / "damaged.mp4", victims)


def test_phone_hevc_clip_decord_fails_on_is_decoded_by_pyav_at_the_same_times(phone_clip):
    reader = open_video(phone_clip)
    times = frame_times(reader)
    reference = pyav_display(phone_clip)
    assert np.isnan(times).sum() == 0 and len(times) == 169 and len(reference) == 169 - 6  # 6 zeroed packets
    shown = np.array(sorted(reference))
    assert np.abs(times[:, None] - shown[None, :]).min(axis=0).max() < 1e-5  # PTS identical to PyAV's
    info = probe(reader, times, phone_clip)
    assert (info.width, info.height) == (SIZE[1], SIZE[0])  # displayed upright (rotation 90)
    chunks = plan_chunks(times, fps=5, chunk_seconds=1)
    with pytest.raises(VideoError) as failed:  # decord alone loses the chunk holding the damaged packets
        list(decode_frames(open_video(phone_clip), chunks[2].frames))
    assert failed.value.reason == "decode_error"

    chunks, reports, decoded = decode_all(phone_clip)
    assert [f for f, _ in decoded] == [f for c in chunks for f in c.frames]  # every sampled frame, in order
    assert reports[2].decoder == "pyav" and reports[2].fallback_reason
    assert all(not r.missing for r in reports) and reports[-1].decoder == "decord"
    for frame, pixels in decoded:
        expected = reference[shown[np.abs(shown - times[frame]).argmin()]]
        np.testing.assert_array_equal(pixels, expected)  # same frame, same rotation as decord's
        assert abs(float(np.median(pixels)) - grey(frame)) < 4
        assert pixels[-1, :, 0].mean() > 240  # the bar on the coded left edge is the bottom row, as decord turns it


@pytest.mark.parametrize("degrees", [90, 270])
def test_pyav_fallback_gives_decords_pixels_on_a_clip_both_decode(tmp_path, media_dir, degrees):
    rotated = rotated_copy(media_dir / "pyfeat_single_face.mp4", tmp_path / "portrait.mp4", degrees)
    reader = open_video(rotated)
    (chunk, *_) = plan_chunks(frame_times(reader), fps=5, chunk_seconds=2)
    wanted = chunk.frames[2:]  # starting after the first keyframe: the fallback seeks
    by_decord = list(decode_frames(reader, wanted))
    by_pyav = list(decode_with_pyav(rotated, wanted, chunk.timestamps[2:]))
    assert [f for f, _ in by_pyav] == list(wanted)
    for (_, a), (_, b) in zip(by_decord, by_pyav, strict=True):
        np.testing.assert_array_equal(a, b)
    report = ChunkDecode()
    assert len(list(decode_chunk(rotated, None, chunk, report))) == len(chunk.frames)
    assert (report.decoder, report.missing) == ("pyav", [])


def test_damaged_middle_is_skipped_and_named_while_the_rest_is_extracted(damaged_clip, tmp_path):
    from tasks.extract.discover import VideoRef
    from tasks.extract.video import ExtractParams, extract_chunk, extract_video
    from tasks.store import Store

    chunks, reports, decoded = decode_all(damaged_clip)
    lost = {f for c in chunks for f, t in zip(c.frames, c.timestamps, strict=True) if 2.0 <= t < 3.0}
    assert {f for f, _ in decoded} == {f for c in chunks for f in c.frames} - lost
    assert sorted(f for r in reports for f, _ in r.missing) == sorted(lost) == [50, 55, 60, 65, 70]
    for frame, pixels in decoded:  # what was decoded is the right frame
        assert abs(float(np.median(pixels)) - grey(frame)) < 4

    store = Store(tmp_path / "store").ensure()
    ref = VideoRef("damaged", str(damaged_clip), damaged_clip.stat().st_size, 0, {})
    params = ExtractParams(fps=5, chunk_seconds=1, body_fps=0, keep_crops=False)
    result = extract_video(ref, params, store, lambda jobs: list(map(extract_chunk, jobs)))
    # 6 s at 5 fps: the grid 0, 0.2, ..., 5.8 and the last frame (5.96 s), less the 5 samples lost
    assert (result.status, result.counts["sampled_frames"], result.info["decoder"]) == ("ok", 26, "decord+pyav")
    (warning,) = result.info["warnings"]
    assert warning["reason"] == "partly_undecodable" and "50..70 (2.000-2.800 s, 5 samples)" in warning["message"]
    store.record_video(result, {}, params.to_json(), "run1")
    store.record_failures([result], "run1")
    video = store.read_catalog("videos").iloc[0]
    assert (video["status"], video["decoder"]) == ("ok", "decord+pyav")
    failures = store.read_catalog("failures")
    assert failures[["video_id", "stage", "reason"]].values.tolist() == [["damaged", "decode", "partly_undecodable"]]
    assert "2.000-2.800 s" in failures["message"].iloc[0]


def test_a_video_with_no_decodable_sample_is_a_decode_error(damaged_clip, tmp_path):
    reader = open_video(damaged_clip)
    middle = [c for c in plan_chunks(frame_times(reader), fps=5, chunk_seconds=1) if c.index == 2]
    report = ChunkDecode()
    assert list(decode_chunk(damaged_clip, reader, middle[0], report)) == []
    fragment = tmp_path / "faces-00002.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"frame": pa.array([], pa.int32())}).replace_schema_metadata(report.metadata()), fragment)
    with pytest.raises(VideoError, match=r"no sampled frame could be decoded.*2\.000-2\.800 s") as info:
        video_decoding([(middle[0], pq.read_schema(fragment).metadata)])
    assert info.value.reason == "decode_error"
