"""Frames are the frames: on a long video whose frames carry their own index in their pixels, every sample
that chunked decoding yields is the frame shown at its timestamp, including chunks deep into the file
(decord seeks by the keyframe index; PyAV, the fallback, seeks by time)."""

from fractions import Fraction

import numpy as np
import pytest

from tasks.extract.decode import ChunkDecode, decode_chunk, decode_frames, frame_times, open_video, plan_chunks

WIDTH, HEIGHT, RATE = 128, 64, 5  # decord fails on widths under 128 (e.g. 96: row padding), PyAV serves them
MINUTES = 10.5
BITS = 12  # 4096 > 10.5 min × 60 s × 5 fps = 3150 frames
BLOCK = 8  # 8 px wide bars: bit b of the index in bar b, its complement in the lower half


def stamp(index: int) -> np.ndarray:
    """A frame whose top half shows ``index`` as 12 white/black bars (bit 0 left) and the bottom half the
    complement, so that a decoded frame names itself and a blend of two frames is recognisable."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        on = (index >> bit) & 1
        image[: HEIGHT // 2, bit * BLOCK : (bit + 1) * BLOCK] = 255 * on
        image[HEIGHT // 2 :, bit * BLOCK : (bit + 1) * BLOCK] = 255 * (1 - on)
    return image


def read_stamp(pixels: np.ndarray) -> int:
    """The index a decoded frame shows; raises when its bars are not clean (not one whole frame)."""
    grey = pixels.astype(np.float32).mean(axis=2)
    index = 0
    for bit in range(BITS):
        top = grey[4 : HEIGHT // 2 - 4, bit * BLOCK + 2 : (bit + 1) * BLOCK - 2].mean()
        bottom = grey[HEIGHT // 2 + 4 : -4, bit * BLOCK + 2 : (bit + 1) * BLOCK - 2].mean()
        assert abs(top - bottom) > 150, f"bar {bit} is not clean: {top:.0f} over {bottom:.0f}"
        index |= int(top > bottom) << bit
    return index


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """10.5 min at 5 fps, 128×64, H.264 with B-frames and a keyframe every 250 frames (50 s)."""
    import av

    path = tmp_path_factory.mktemp("long") / "numbered.mp4"
    n = int(MINUTES * 60 * RATE)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"g": "250", "bf": "2", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, RATE)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(stamp(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path, n


def test_the_stamp_reads_back():
    assert [read_stamp(stamp(i)) for i in (0, 1, 1234, 3149, 4095)] == [0, 1, 1234, 3149, 4095]


def test_every_chunked_sample_is_the_frame_at_its_timestamp(long_video):
    path, n = long_video
    reader = open_video(path)
    times = frame_times(reader)
    assert len(times) == n
    chunks = plan_chunks(times, fps=2, chunk_seconds=10)  # 2 of every 5 frames, 63 chunks of 10 s
    assert len(chunks) == 63 and chunks[-1].timestamps[-1] > 620
    seen = 0
    for chunk in chunks:
        # as a Dask task does: a fresh reader per chunk, so a chunk deep in the file starts with a seek
        fresh = open_video(path)
        decoded = list(decode_chunk(path, fresh, chunk, report := ChunkDecode()))
        assert report.decoder == "decord" and report.missing == []
        assert [f for f, _ in decoded] == list(chunk.frames)
        for (frame, pixels), timestamp in zip(decoded, chunk.timestamps, strict=True):
            shown = read_stamp(pixels)
            assert shown == frame, f"chunk {chunk.index}: frame {frame} decoded as frame {shown}"
            assert shown == round(timestamp * RATE), f"frame {shown} at {timestamp} s"
            seen += 1
    assert seen == sum(len(c.frames) for c in chunks) == 1260 + 1  # the grid, then the video's last frame


def test_chunks_decode_the_same_out_of_order_and_with_pyav(long_video):
    """Chunks run in any order on the workers (a reader reused backwards), and the PyAV fallback seeks by
    time: both give the frame at each timestamp, deep into the file too."""
    path, _ = long_video
    reader = open_video(path)
    chunks = plan_chunks(frame_times(reader), fps=3, chunk_seconds=7)
    picked = [chunks[-1], chunks[len(chunks) // 2], chunks[0], chunks[-2], chunks[7]]
    for chunk in picked:
        for frame, pixels in decode_frames(reader, chunk.frames):
            assert read_stamp(pixels) == frame
        pyav = list(decode_chunk(path, None, chunk, report := ChunkDecode()))
        assert report.decoder == "pyav" and report.missing == []
        assert [read_stamp(p) for _, p in pyav] == [f for f, _ in pyav] == list(chunk.frames)
        assert [round(t * RATE) for t in chunk.timestamps] == list(chunk.frames)
