"""Windows of face-track (or body) samples, the unit every predictor labels (``tasks.predict.inference``'s
docstring states the rule: ``window`` consecutive samples every ``stride``, a tail window ending at each
track's last sample, each sample owned by the covering window whose centre is nearest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.extract.decode import VideoError
from tasks.store import Store, read_schema, read_table


@dataclass(frozen=True)
class Window:
    """One output row: ``rows`` are positions in the video's frames table, in frame order."""

    face_id: int
    index: int
    rows: np.ndarray
    start_time: float
    end_time: float
    owned: int  # samples of the track that take this window's label (see the module docstring)


def plan_windows(
    face_id: np.ndarray, frame: np.ndarray, timestamp: np.ndarray, window: int, stride: int
) -> list[Window]:
    """Windows of ``window`` samples every ``stride`` samples per face track (see the module docstring)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    order = np.lexsort((frame, face_id))
    windows = []
    for track in np.unique(face_id):
        rows = order[face_id[order] == track]
        starts = list(range(0, len(rows) - window + 1, stride)) if len(rows) >= window else [0]
        if len(rows) > window and starts[-1] + window < len(rows):
            starts.append(len(rows) - window)  # the tail the stride left out: a last window ending at the end
        times = timestamp[rows]
        bounds = [(s, min(s + window, len(rows))) for s in starts]
        owner, nearest = np.full(len(rows), -1), np.full(len(rows), np.inf)
        for k, (s, e) in enumerate(bounds):  # in start order, so on a tie the later window takes the sample
            distance = np.abs(times[s:e] - (times[s] + times[e - 1]) / 2)
            closer = distance <= nearest[s:e]
            owner[s:e][closer], nearest[s:e][closer] = k, distance[closer]
        owned = np.bincount(owner, minlength=len(bounds))
        for k, (s, e) in enumerate(bounds):
            part = rows[s:e]
            windows.append(Window(int(track), k, part, float(times[s]), float(times[e - 1]), int(owned[k])))
    return windows


@dataclass
class VideoWindows:
    """A video's frames table (numpy columns) and its windows; where its crops come from."""

    video_id: str
    columns: dict[str, np.ndarray]
    windows: list[Window]
    crops_path: Path | None = None  # <store>/crops/... when present
    video_path: str | None = None  # from the catalog, to decode when there are no stored crops
    probs: np.ndarray | None = None  # (windows, classes), filled by a predictor
    error: VideoError | None = None  # why its crops could not be read


def load_video_windows(
    store: Store, video_id: str, columns: list[str], window: int, stride: int, table: str = "frames"
) -> VideoWindows:
    """The video's ``table`` rows (``body``: ``person_id`` read as ``face_id``) and their windows."""
    key, path = "person_id" if table == "body" else "face_id", store.partition(table, video_id)
    persons = ["person_id"] if table == "frames" and "person_id" in read_schema(path).names else []
    read = read_table(path, columns=[key if c == "face_id" else c for c in columns] + persons)
    cols = {("face_id" if name == key else name): read[name].to_numpy() for name in read.column_names}
    cols["person_id"] = cols["person_id" if persons else "face_id"]  # a body's person; a track before persons
    windows = plan_windows(cols["face_id"], cols["frame"], cols["timestamp"], window, stride)
    crops = store.partition("crops", video_id)
    return VideoWindows(video_id, cols, windows, crops if crops.is_file() else None)
