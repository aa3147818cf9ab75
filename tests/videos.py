"""Real video files for tests, written with PyAV: variable frame rate, damaged and non-video files."""

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_vfr(
    path: Path,
    times_ms: list[int],
    size: tuple[int, int] = (64, 48),
    *,
    codec: str = "libx264",
    options: dict | None = None,
    rotation: int | None = None,
    shade=lambda i: 10 * i,
    edge: bool = False,
) -> Path:
    """A video whose frame i is shown at ``times_ms[i]`` and has uniform grey level ``shade(i)``.

    ``codec`` and its ``options`` (``libx265`` is written as ``hvc1``, as phones do in .mov); ``rotation``:
    display rotation metadata in degrees; ``edge``: a white bar on the left edge shows which way a frame
    was turned. Times are kept at 1/600 s (the QuickTime time base phones use)."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 600)
        if codec == "libx265":
            stream.codec_tag = "hvc1"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, t in enumerate(times_ms):
            image = np.full((height, width, 3), shade(i), np.uint8)
            if edge:
                image[:, :12] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 0.6)), Fraction(1, 600)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def presentation_times(path: Path) -> list[float]:
    """Presentation times of the frames a player shows, read independently of decord (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def truncated_copy(source: Path, target: Path, keep: float = 0.4) -> Path:
    data = Path(source).read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def rotated_copy(source: Path, target: Path, degrees: int) -> Path:
    """``source`` remuxed (no re-encoding) with a display rotation, as phones record portrait video."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        copy.set_display_rotation(degrees)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return target
