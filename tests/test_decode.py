from pathlib import Path

import numpy as np
import pytest

from tasks.extract.decode import (
    VideoError,
    decode_frames,
    frame_times,
    open_video,
    plan_chunks,
    probe,
    truncation_warnings,
)
from tests.videos import presentation_times, rotated_copy, truncated_copy, write_vfr


def test_plan_takes_the_frame_on_screen_at_each_grid_time():
    times = np.array([0.0, 0.04, 0.2, 0.21, 0.5, 1.0, 1.04, 1.5, 2.3, 2.31, 2.9])
    chunks = plan_chunks(times, fps=4, chunk_seconds=1)
    # grid 0 .25 .5 .75 | 1 1.25 1.5 1.75 | 2 2.25 2.5 2.75, then the last frame's time 2.9
    # on screen:  0  3  4  4 | 5  6    7   7    | 7 7    9   9     10 → each frame once, in its first chunk
    assert [c.frames for c in chunks] == [(0, 3, 4), (5, 6, 7), (9, 10)]
    assert chunks[0].timestamps == (0.0, 0.21, 0.5)
    assert chunks[2].timestamps == (2.31, 2.9)


def test_chunks_start_at_keyframes_where_one_is_near():
    from tasks.extract.decode import chunk_starts

    gop_10_4 = np.array([0.0, 10.4, 20.9, 31.3, 41.7])  # ffmpeg's default GOP of 250 frames at 24 fps
    assert chunk_starts(50.0, 10, gop_10_4).tolist() == [0.0, 10.4, 20.9, 31.3, 41.7]
    every_3 = np.arange(0.0, 60.0, 3.0)
    assert chunk_starts(40.0, 10, every_3).tolist() == [0.0, 9.0, 18.0, 27.0, 36.0]
    assert chunk_starts(35.0, 10, np.array([0.0])).tolist() == [0.0, 10.0, 20.0, 30.0]  # one GOP: every 10 s
    times = np.arange(0.0, 50.0, 1 / 24)
    plain = plan_chunks(times, fps=5, chunk_seconds=10)
    aligned = plan_chunks(times, fps=5, chunk_seconds=10, keyframes=gop_10_4)
    assert [f for c in aligned for f in c.frames] == [f for c in plain for f in c.frames]  # the same samples
    assert [c.timestamps[0] >= k - 1e-6 for c, k in zip(aligned, gop_10_4, strict=True)] == [True] * 5
    assert [c.timestamps[-1] < k for c, k in zip(aligned, gop_10_4[1:], strict=False)] == [True] * 4


def test_plan_skips_edit_list_preroll_and_validates_arguments():
    times = np.array([np.nan, np.nan, 0.0, 0.5, 1.0])
    (chunk,) = plan_chunks(times, fps=2, chunk_seconds=10)
    assert chunk.frames == (2, 3, 4)
    with pytest.raises(ValueError, match="fps"):
        plan_chunks(times, fps=0, chunk_seconds=1)
    with pytest.raises(ValueError, match="chunk_seconds"):
        plan_chunks(times, fps=1, chunk_seconds=0.5)


def test_variable_frame_rate_video_gets_true_presentation_times(tmp_path):
    times_ms = [0, 40, 200, 210, 500, 1000, 1040, 1500, 2300, 2310, 2900]
    path = write_vfr(tmp_path / "vfr.mp4", times_ms)
    reader = open_video(path)
    np.testing.assert_allclose(frame_times(reader), np.array(times_ms) / 1000, atol=1e-6)
    chunks = plan_chunks(frame_times(reader), fps=10, chunk_seconds=1)
    frames = [f for c in chunks for f in c.frames]
    stamps = [t for c in chunks for t in c.timestamps]
    assert stamps == pytest.approx([times_ms[f] / 1000 for f in frames], abs=1e-6)
    # the decoded pixels are those of the frame shown at that time (frame i has grey level 10 i)
    for frame, pixels in decode_frames(reader, tuple(frames)):
        assert abs(float(pixels.mean()) - 10 * frame) < 4


def test_timestamps_match_an_independent_decoder_on_real_vfr_clip(media_dir):
    path = media_dir / "pyfeat_no_face.mp4"
    reader = open_video(path)
    shown = presentation_times(path)
    info = probe(reader)
    assert info.n_frames == len(shown) and (info.width, info.height) == (960, 540)
    chunks = plan_chunks(frame_times(reader), fps=5, chunk_seconds=1)
    stamps = np.array([t for c in chunks for t in c.timestamps])
    assert np.abs(stamps[:, None] - np.array(shown)[None, :]).min(axis=1).max() < 1e-5


def test_bad_files_raise_video_error_with_reason_and_name(tmp_path, media_dir):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    for path, reason in (
        (empty, "empty_file"),
        (text, "not_a_video"),
        (tmp_path / "gone.mp4", "missing_file"),
    ):
        with pytest.raises(VideoError, match=path.name) as info:
            open_video(path)
        assert info.value.reason == reason
    truncated = truncated_copy(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", tmp_path / "cut.mp4")
    try:
        reader = open_video(truncated)
        chunks = plan_chunks(frame_times(reader), fps=5, chunk_seconds=60)
        list(decode_frames(reader, chunks[0].frames))
    except VideoError as exc:
        assert exc.reason in {"not_a_video", "decode_error"}
    else:  # decord indexed only the frames present: then they must all be real frames
        assert probe(reader).duration_s < 19.7 * 0.6


def test_rotated_video_is_decoded_upright_as_a_player_shows_it(tmp_path, media_dir):
    source = media_dir / "pyfeat_single_face.mp4"
    rotated = rotated_copy(source, tmp_path / "portrait.mp4", 90)
    reader = open_video(rotated)
    info = probe(reader)
    assert (info.width, info.height) == (360, 640)  # the displayed size, not the coded 640 x 360
    ((_, upright),) = decode_frames(reader, (5,))
    ((_, coded),) = decode_frames(open_video(source), (5,))
    np.testing.assert_array_equal(upright, np.rot90(coded, 1))


def test_whole_files_are_not_called_truncated(media_dir):
    # pyfeat_no_face.mp4 declares 3.945 s and its frames end at 4.015 s; a video's audio may run longer
    for whole in sorted(media_dir.rglob("*")):
        if whole.suffix in (".mp4", ".flv"):
            assert truncation_warnings(whole, probe(open_video(whole), path=whole), fps=5) == [], whole.name


@pytest.mark.parametrize(
    ("name", "declared"), [("pyfeat_WolfgangLanger_Pexels.mp4", 19.685), ("cremad/1001_DFA_HAP_XX.flv", 1.868)]
)
def test_a_file_cut_short_is_read_as_far_as_it_goes_and_its_lost_end_named(media_dir, tmp_path, name, declared):
    """An MP4 with its index first, or an FLV, cut in half (an interrupted copy) still opens: the demuxer trims
    the index to the bytes present. The container's declared duration tells how much is lost."""
    cut = truncated_copy(media_dir / name, tmp_path / f"cut{Path(name).suffix}", keep=0.5)
    probed = probe(open_video(cut), path=cut)
    assert probed.duration_s < 0.6 * declared
    (warning,) = truncation_warnings(cut, probed, fps=5)
    assert (warning["stage"], warning["reason"]) == ("probe", "truncated")
    lost = int((declared - probed.duration_s) * 5)
    assert f"declares {declared:.2f} s of video but its frames end at {probed.duration_s:.2f} s" in warning["message"]
    assert (
        f"{probed.duration_s:.2f}-{declared:.2f} s (about {lost} samples at 5 fps) cannot be read" in warning["message"]
    )


def test_a_truncated_file_is_extracted_with_a_truncated_warning(media_dir, tmp_path):
    from tasks.extract.discover import VideoRef
    from tasks.extract.video import ExtractParams, extract_chunk, extract_video
    from tasks.store import Store

    cut = truncated_copy(media_dir / "cremad" / "1001_DFA_HAP_XX.flv", tmp_path / "cut.flv", keep=0.5)
    store = Store(tmp_path / "store").ensure()
    params = ExtractParams(fps=5, chunk_seconds=1, body_fps=0, keep_crops=False)
    ref = VideoRef("cut", str(cut), cut.stat().st_size, 0, {})
    result = extract_video(ref, params, store, lambda jobs: list(map(extract_chunk, jobs)))
    assert result.status == "ok" and result.counts["sampled_frames"] > 0
    (warning,) = result.info["warnings"]
    assert warning["reason"] == "truncated" and "1.87 s of video" in warning["message"]
    store.record_failures([result], "run1")
    assert store.read_catalog("failures")["reason"].tolist() == ["truncated"]
