"""Probe videos, plan the sampling grid, decode sampled frames with decord (PyAV where decord fails).

Times are presentation timestamps (PTS) read from the container for every frame, so variable frame
rate videos get true times. Frames that the container's edit list hides (negative PTS, decoded as
pre-roll by decord) are never sampled: a frame's ``timestamp`` is the time a player shows it.

A file cut short (an interrupted copy) often still opens: the demuxer trims its index to the bytes present.
:func:`truncation_warnings` compares the duration the container declares with the frames' and names the
lost end in a ``truncated`` warning.

Rotation metadata (portrait phone video) is applied by decord while decoding: frames, their size in
``Probe`` and every pixel coordinate downstream are as a player displays the video.

Sampling grid: at ``fps`` samples per second, grid time ``t_k = k / fps``; each grid time takes the
frame on screen at that time (the last frame whose PTS is <= t_k); the video's last frame is sampled
too, so that the end of a clip shorter than a grid step is seen (the apex of a short neutral-to-apex
clip); a frame picked twice (sampling faster than the video) is kept once. Chunks are whole seconds of
the grid: chunk ``c`` holds the samples with ``c * chunk_seconds <= t_k < (c + 1) * chunk_seconds`` (the
last frame counts at its own time). Given the video's keyframes (:func:`keyframe_times`; the pipeline does),
chunks start at keyframes instead where one is near (:func:`chunk_starts`): decoding a chunk starts at the
keyframe before its first sample, so a chunk that starts mid-GOP decodes the previous chunk's frames again
(ffmpeg's default GOP is 250 frames, 10.4 s at 24 fps: 1.5-1.7x the decoding CPU per video, bench/limit.py).

Fallback: decord decodes ahead in a thread and seeks by the container's keyframe index; phone video
(HEVC, variable rate, edit lists), a wrong keyframe index or damaged packets can make a ``get_batch``
raise although the file plays. :func:`decode_chunk` then decodes the rest of the chunk with PyAV: it
seeks to the keyframe before the first wanted time, decodes in order and keeps the frames whose
presentation time is a wanted frame's time (the times :func:`frame_times` gave), rotated as decord
rotates them. A sampled frame that neither decoder yields is skipped; :func:`video_decoding` turns
those into ``partly_undecodable`` warnings naming the time ranges, and raises ``decode_error`` only
when no sampled frame of the video could be decoded.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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


def probe(reader, times: np.ndarray | None = None, path: str | Path | None = None) -> Probe:
    """Size, rate and duration; ``times`` (from :func:`frame_times`) saves reading every frame's PTS again.

    With ``path``, a first frame decord cannot decode is decoded with PyAV for the size.
    """
    times = frame_times(reader) if times is None else times
    shown = times[~np.isnan(times)]
    if shown.size == 0:
        raise VideoError("not_a_video", "no frame has a presentation time")
    height, width = frame_size(reader, path)
    fps = float(reader.get_avg_fps())
    last_end = float(np.asarray(reader.get_frame_timestamp(len(reader) - 1))[-1])
    return Probe(int(shown.size), fps, max(last_end, float(shown.max())), width, height)


TRUNCATION_TOLERANCE_S = 0.5  # a declared duration longer than the frames by more than this (or 2%): truncated


def declared_seconds(path: str | Path) -> float | None:
    """The video's duration as its container declares it (the video stream's own, else the container's: FLV);
    None when it declares none or PyAV cannot open the file."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, IndexError):
        return None


def truncation_warnings(path: str | Path, probed: Probe, fps: float) -> list[dict[str, str]]:
    """A ``truncated`` warning when the container declares more video than its frames reach: a file cut short
    (an interrupted copy or upload) whose index the demuxer trims to the bytes present, so decoding succeeds
    and the lost end would otherwise go unnoticed."""
    declared = declared_seconds(path)
    if declared is None or declared - probed.duration_s <= max(TRUNCATION_TOLERANCE_S, 0.02 * declared):
        return []
    lost = int((declared - probed.duration_s) * fps)
    message = (
        f"the container declares {declared:.2f} s of video but its frames end at {probed.duration_s:.2f} s: "
        f"{probed.duration_s:.2f}-{declared:.2f} s (about {lost} samples at {fps:g} fps) cannot be read; the file "
        "is probably truncated (an interrupted copy or recording)"
    )
    return [{"stage": "probe", "reason": "truncated", "message": message}]


def frame_size(reader, path: str | Path | None = None) -> tuple[int, int]:
    """(height, width) of the decoded frames (decord exposes no header field: decode frame 0).

    When decord cannot decode frame 0 and ``path`` is given, the first frame PyAV decodes gives the size.
    """
    try:
        shape = reader.get_batch([0]).shape  # (1, H, W, 3)
    except Exception as exc:  # decord raises DECORDError or RuntimeError on streams it cannot decode
        if path is None:
            raise VideoError("decode_error", f"frame 0: {first_line(exc)}") from exc
        shape = (1, *pyav_first_frame_size(path, exc))
    return int(shape[1]), int(shape[2])


def pyav_first_frame_size(path: str | Path, decord_error: BaseException) -> tuple[int, int]:
    import av

    try:
        with av.open(str(path)) as container:
            for frame in _pyav_frames(container):
                return display_pixels(frame).shape[:2]
    except av.FFmpegError as exc:
        raise VideoError(
            "decode_error", f"{path}: decord: {first_line(decord_error)}; PyAV: {first_line(exc)}"
        ) from exc
    raise VideoError("decode_error", f"{path}: decord: {first_line(decord_error)}; PyAV decoded no frame")


def keyframe_times(reader, times: np.ndarray) -> np.ndarray:
    """Presentation times of the video's keyframes (``times`` from :func:`frame_times`; hidden ones left out)."""
    keys = times[np.asarray(reader.get_key_indices(), dtype=np.int64)]
    return np.sort(keys[~np.isnan(keys)])


def chunk_starts(end: float, chunk_seconds: int, keyframes: np.ndarray) -> np.ndarray:
    """Start times of the chunks of a video whose last sample is at ``end``: from 0, each next start is the keyframe
    nearest to ``chunk_seconds`` after the previous start among those between half and twice that far, else
    exactly ``chunk_seconds`` after it (no keyframe near: a long GOP)."""
    starts = [0.0]
    while starts[-1] + chunk_seconds <= end:
        start, target = starts[-1], starts[-1] + chunk_seconds
        near = keyframes[(keyframes > start + chunk_seconds / 2) & (keyframes <= start + 2 * chunk_seconds)]
        starts.append(float(near[np.argmin(np.abs(near - target))]) if near.size else target)
    return np.asarray(starts)


def plan_chunks(times: np.ndarray, fps: float, chunk_seconds: int, keyframes: np.ndarray | None = None) -> list[Chunk]:
    """Sampled frames grouped in chunks of whole seconds, or starting at ``keyframes`` (times) where one is near
    (see module docstring)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if chunk_seconds < 1 or int(chunk_seconds) != chunk_seconds:
        raise ValueError(f"chunk_seconds must be a whole number >= 1, got {chunk_seconds}")
    valid = np.flatnonzero(~np.isnan(times))
    if valid.size == 0:
        return []
    order = valid[np.argsort(times[valid], kind="stable")]
    shown = times[order]
    grid = np.append(np.arange(0.0, shown[-1] + 1e-9, 1.0 / fps), shown[-1])
    pos = np.searchsorted(shown, grid + 1e-6, side="right") - 1
    keep = pos >= 0
    picked, first = np.unique(pos[keep], return_index=True)
    frames = order[picked]
    stamps = shown[picked]
    if keyframes is None:
        chunk_of = np.floor(grid[keep][first] / chunk_seconds + 1e-9).astype(int)
    else:  # by the frames' own times: a chunk's first frame is at or after the keyframe it starts at
        starts = chunk_starts(float(stamps[-1]), chunk_seconds, keyframes)
        chunk_of = np.searchsorted(starts, stamps + 1e-6, side="right") - 1
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


TIME_TOLERANCE_S = 1e-3  # decord's frame times are float32; real frames are >= ~4 ms apart


@dataclass
class ChunkDecode:
    """How one chunk was decoded: ``decoder`` is ``pyav`` once the fallback decoded any of its frames;
    ``missing`` lists the (frame, time) of wanted frames neither decoder yielded."""

    decoder: str = "decord"
    missing: list[tuple[int, float]] = field(default_factory=list)
    fallback_reason: str | None = None  # decord's error that started the fallback

    def metadata(self) -> dict[bytes, bytes]:
        """Parquet key-value metadata of the chunk's fragment (a rerun reads the outcome back)."""
        return {b"decoder": self.decoder.encode(), b"undecodable": json.dumps(self.missing).encode()}


def decode_chunk(
    path: str | Path, reader, chunk: Chunk, report: ChunkDecode, batch: int = 4
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, HxWx3 uint8 RGB) of the wanted frames in order, skipping those no decoder yields.

    decord decodes batches of ``batch`` frames (``reader`` may be None: PyAV only); from the first batch
    it fails on (an exception, or fewer frames than asked), PyAV decodes the rest of the chunk at the
    same presentation times. ``report`` says afterwards what happened.
    """
    frames, timestamps = chunk.frames, chunk.timestamps
    done = 0
    while reader is not None and done < len(frames):
        part = list(frames[done : done + batch])
        try:
            pixels = reader.get_batch(part).asnumpy()
            if len(pixels) != len(part):
                raise VideoError("decode_error", f"decord returned {len(pixels)} of {len(part)} frames")
        except Exception as exc:  # decord raises DECORDError or RuntimeError on streams it cannot decode
            report.fallback_reason = f"frames {part[0]}..{part[-1]}: {first_line(exc)}"
            break
        yield from zip(part, pixels, strict=True)
        done += len(part)
    if done == len(frames):
        return
    report.decoder = "pyav"
    rest, times = list(frames[done:]), [float(t) for t in timestamps[done:]]
    yielded = set()
    for frame, pixels in decode_with_pyav(path, rest, times):
        yielded.add(frame)
        yield frame, pixels
    report.missing = [(f, t) for f, t in zip(rest, times, strict=True) if f not in yielded]


def decode_with_pyav(
    path: str | Path, frames: Sequence[int], times: Sequence[float]
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, pixels) for the wanted ``frames`` whose presentation ``times`` (increasing) PyAV decodes.

    Seeks to the keyframe before the first wanted time and decodes in order; packets the decoder rejects
    are skipped (their frames are not yielded). When the seek yields none of the wanted frames (a wrong
    keyframe index), one sequential pass from the start of the file tries again. Pixels are rotated as
    the player (and decord) shows them.
    """
    if not frames:
        return
    wanted = np.asarray(times, dtype=np.float64)
    seek = wanted[0] - TIME_TOLERANCE_S > 0
    found = yield from _pyav_matching(path, frames, wanted, seek)
    if seek and not found:
        yield from _pyav_matching(path, frames, wanted, seek=False)


def _pyav_matching(path, frames: Sequence[int], wanted: np.ndarray, seek: bool):
    """Yield the wanted frames one decoding pass finds; returns how many it found."""
    import av

    i = found = 0
    try:
        container = av.open(str(path))
    except av.FFmpegError:
        return 0
    with container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # parallelism comes from Dask running chunks side by side
        if seek:
            try:
                target = int(np.floor((wanted[0] - TIME_TOLERANCE_S) / stream.time_base))
                container.seek(target, stream=stream, backward=True)
            except av.FFmpegError:
                pass  # not seekable: decode from where the container stands (the start)
        for frame in _pyav_frames(container):
            t = frame.time
            while i < len(wanted) and t > wanted[i] + TIME_TOLERANCE_S:
                i += 1  # a wanted frame passed without being decoded
            if i == len(wanted):
                break
            if abs(t - wanted[i]) <= TIME_TOLERANCE_S:
                yield frames[i], display_pixels(frame)
                i += 1
                found += 1
    return found


def _pyav_frames(container):
    """Frames with a presentation time, in order; a packet the decoder rejects is skipped."""
    import av

    stream = container.streams.video[0]
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.FFmpegError:
            continue
        for frame in decoded:
            if frame.time is not None:
                yield frame


def display_pixels(frame) -> np.ndarray:
    """RGB pixels of a PyAV frame rotated by its display matrix, as decord returns them."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = (int(round(frame.rotation / 90)) % 4) if frame.rotation else 0
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def video_decoding(fragments: Sequence[tuple[Chunk, dict[bytes, bytes] | None]]) -> dict[str, object]:
    """The video's ``decoder`` and ``warnings`` from its chunks and the schema metadata of their faces fragments.

    ``decoder`` is ``decord``, ``pyav`` or ``decord+pyav`` (some chunks needed the fallback). Each run of
    consecutive sampled frames that no decoder yielded is one ``partly_undecodable`` warning naming its
    time range. Raises VideoError(``decode_error``) when no sampled frame could be decoded.
    """
    decoders, missing = set(), set()
    for _, metadata in fragments:
        meta = metadata or {}
        decoders.add(meta.get(b"decoder", b"decord").decode())
        missing.update(int(f) for f, _ in json.loads(meta.get(b"undecodable", b"[]")))
    samples = [(f, t) for chunk, _ in fragments for f, t in zip(chunk.frames, chunk.timestamps, strict=True)]
    runs: list[list[tuple[int, float]]] = []
    previous_missing = False
    for sample in samples:
        if sample[0] in missing:
            if previous_missing:
                runs[-1].append(sample)
            else:
                runs.append([sample])
        previous_missing = sample[0] in missing
    messages = [
        f"sampled frames {run[0][0]}..{run[-1][0]} ({run[0][1]:.3f}-{run[-1][1]:.3f} s, {len(run)} samples): "
        "neither decord nor PyAV could decode them"
        for run in runs
    ]
    if samples and len(missing) == len(samples):
        raise VideoError("decode_error", f"no sampled frame could be decoded; {messages[0]}")
    decoder = "+".join(d for d in ("decord", "pyav") if d in decoders) or "decord"
    warnings = [{"stage": "decode", "reason": "partly_undecodable", "message": m} for m in messages]
    return {"decoder": decoder, "warnings": warnings}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
