"""Probe videos, plan the sampling grid, decode sampled frames with decord.

Times are presentation timestamps (PTS) read from the container for every frame, so variable frame
rate videos get true times. Frames that the container's edit list hides (negative PTS, decoded as
pre-roll by decord) are never sampled: a frame's ``timestamp`` is the time a player shows it.

Rotation metadata (portrait phone video) is applied by decord while decoding: frames, their size in
``Probe`` and every pixel coordinate downstream are as a player displays the video.

Sampling grid: at ``fps`` samples per second, grid time ``t_k = k / fps``; each grid time takes the
frame on screen at that time (the last frame whose PTS is <= t_k); a frame picked twice (sampling
faster than the video) is kept once. Chunks are whole seconds of the grid: chunk ``c`` holds the
samples with ``c * chunk_seconds <= t_k < (c + 1) * chunk_seconds``.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoError(Exception):
    """A video that cannot be used; ``reason`` is a short code counted in the failures table."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep the reason when Dask sends the error back from a worker
        return (VideoError, (self.reason, str(self)))


@dataclass(frozen=True)
class Probe:
    n_frames: int  # frames presented (edit-list pre-roll excluded)
    fps: float  # average frame rate
    duration_s: float
    width: int
    height: int


@dataclass(frozen=True)
class Chunk:
    index: int
    frames: tuple[int, ...]  # decoder frame indices to analyse, increasing
    timestamps: tuple[float, ...]  # their presentation times, seconds


def open_video(path: str | Path, threads: int = 1):
    """A decord VideoReader, or VideoError(reason) naming the file.

    One decoding thread by default: parallelism comes from Dask running chunks side by side.
    """
    import decord

    path = Path(path)
    if not path.is_file():
        raise VideoError("missing_file", f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoError("empty_file", f"{path}: file is empty (0 bytes)")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
    except (decord.DECORDError, RuntimeError) as exc:  # decord reports unreadable input as RuntimeError
        raise VideoError("not_a_video", f"{path}: no decodable video stream ({first_line(exc)})") from exc
    if len(reader) == 0:
        raise VideoError("not_a_video", f"{path}: video stream has no frames")
    return reader


def frame_times(reader) -> np.ndarray:
    """Presentation start time (s) of every decoder frame; NaN for frames an edit list hides."""
    times = np.asarray(reader.get_frame_timestamp(range(len(reader))), dtype=np.float64)[:, 0]
    return np.where(times < -1e-6, np.nan, times)


def probe(reader, times: np.ndarray | None = None) -> Probe:
    """Size, rate and duration; ``times`` (from :func:`frame_times`) saves reading every frame's PTS again."""
    times = frame_times(reader) if times is None else times
    shown = times[~np.isnan(times)]
    if shown.size == 0:
        raise VideoError("not_a_video", "no frame has a presentation time")
    height, width = frame_size(reader)
    fps = float(reader.get_avg_fps())
    last_end = float(np.asarray(reader.get_frame_timestamp(len(reader) - 1))[-1])
    return Probe(int(shown.size), fps, max(last_end, float(shown.max())), width, height)


def frame_size(reader) -> tuple[int, int]:
    """(height, width) of the decoded frames (decord exposes no header field: decode frame 0)."""
    shape = reader.get_batch([0]).shape  # (1, H, W, 3)
    return int(shape[1]), int(shape[2])


def plan_chunks(times: np.ndarray, fps: float, chunk_seconds: int) -> list[Chunk]:
    """Sampled frames grouped in chunks of whole seconds (see module docstring)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if chunk_seconds < 1 or int(chunk_seconds) != chunk_seconds:
        raise ValueError(f"chunk_seconds must be a whole number >= 1, got {chunk_seconds}")
    valid = np.flatnonzero(~np.isnan(times))
    if valid.size == 0:
        return []
    order = valid[np.argsort(times[valid], kind="stable")]
    shown = times[order]
    grid = np.arange(0.0, shown[-1] + 1e-9, 1.0 / fps)
    pos = np.searchsorted(shown, grid + 1e-6, side="right") - 1
    keep = pos >= 0
    picked, first = np.unique(pos[keep], return_index=True)
    frames = order[picked]
    stamps = shown[picked]
    chunk_of = np.floor(grid[keep][first] / chunk_seconds + 1e-9).astype(int)
    return [
        Chunk(
            int(c),
            tuple(int(f) for f in frames[chunk_of == c]),
            tuple(float(t) for t in stamps[chunk_of == c]),
        )
        for c in np.unique(chunk_of)
    ]


def decode_frames(reader, frames: tuple[int, ...], batch: int = 4):
    """Yield (frame index, HxWx3 uint8 RGB array) for the requested frames, in order."""
    for start in range(0, len(frames), batch):
        part = list(frames[start : start + batch])
        try:
            pixels = reader.get_batch(part).asnumpy()
        except Exception as exc:  # decord raises DECORDError or RuntimeError on damaged streams
            raise VideoError("decode_error", f"frames {part[0]}..{part[-1]}: {first_line(exc)}") from exc
        yield from zip(part, pixels, strict=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
