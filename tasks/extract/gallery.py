"""Video-call galleries: the grid of tiles a conferencing app lays its participants out in.

A gallery frame is cut into tiles by straight gaps or borders of one flat colour that run across the whole
frame: :func:`detect_grid` looks, on the grey frame, for columns (rows) whose pixels all lie within
:data:`FLAT_STD` grey levels of their mean, keeps runs of them that lie inside the frame (a run touching an
edge is a letterbox bar, not a gap) and splits the frame at their middles. A grid needs tiles at least
:data:`MIN_TILE` of the frame's side, two of which show something (grey spread of :data:`TILE_STD` or more: an
app leaves unused tiles empty, and the dark band of a fading frame is not a tile). Real scenes almost never
hold a full-height flat column, so a room or a single speaker yields no grid.

Each chunk looks at its first decoded frame; :func:`video_grid` takes the grid most chunks agree on (and
calls the video a gallery only when at least half of its chunks saw it), and :func:`tile_of` gives each face
the tile its box centre lies in (``row * columns + column``). A participant's tile is recorded, not used as
their identity: apps reorder tiles when someone speaks, and ``person_id`` follows the face
(``tasks.extract.identity``).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

FLAT_STD = 2.0  # grey levels
TILE_STD = 8.0  # grey levels: a tile must show something (a dark band at the top of a fading frame does not)
MIN_TILE = 0.15  # of the frame's width (height)

Grid = tuple[tuple[int, ...], tuple[int, ...]]  # x and y boundaries, each from 0 to the frame's side


def _splits(grey: np.ndarray) -> tuple[int, ...]:
    """Boundaries along axis 1 of ``grey`` (H, W): 0, the middles of the inner flat runs, W."""
    W = grey.shape[1]
    flat = grey.std(axis=0) <= FLAT_STD
    edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(np.int8), 0]))
    cuts = [0]
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if start == 0 or stop == W:
            continue
        middle = (start + stop) // 2
        if middle - cuts[-1] >= MIN_TILE * W:
            cuts.append(int(middle))
    if W - cuts[-1] < MIN_TILE * W:
        cuts.pop()
    return (*cuts, W) if cuts else (0, W)


def detect_grid(pixels: np.ndarray) -> Grid | None:
    """The gallery grid of an RGB frame (H, W, 3), or None when it is not cut into at least two tiles."""
    grey = pixels.astype(np.float32).mean(axis=2)
    xs, ys = _splits(grey), _splits(grey.T)
    if (len(xs) - 1) * (len(ys) - 1) < 2:
        return None
    shown = sum(
        grey[y0:y1, x0:x1].std() >= TILE_STD
        for y0, y1 in zip(ys[:-1], ys[1:], strict=True)
        for x0, x1 in zip(xs[:-1], xs[1:], strict=True)
    )
    return (xs, ys) if shown >= 2 else None


def grid_metadata(grid: Grid | None) -> bytes:
    return json.dumps(grid).encode()


def video_grid(chunk_grids: list[bytes | None]) -> Grid | None:
    """The grid at least half of the chunks saw (their fragments' ``grid`` metadata), else None."""
    grids = [json.loads(g) for g in chunk_grids if g]
    seen = Counter(json.dumps(g) for g in grids if g)
    if not seen:
        return None
    best, votes = seen.most_common(1)[0]
    if votes * 2 < len(chunk_grids):
        return None
    xs, ys = json.loads(best)
    return tuple(xs), tuple(ys)


def tile_of(grid: Grid | None, bboxes: np.ndarray) -> np.ndarray:
    """(N,) tile index (row-major) of each box's centre in ``grid``; -1 everywhere without a grid."""
    if grid is None:
        return np.full(len(bboxes), -1, np.int32)
    xs, ys = grid
    cx = (bboxes[:, 0] + bboxes[:, 2]) / 2
    cy = (bboxes[:, 1] + bboxes[:, 3]) / 2
    column = np.clip(np.searchsorted(xs, cx, side="right") - 1, 0, len(xs) - 2)
    row = np.clip(np.searchsorted(ys, cy, side="right") - 1, 0, len(ys) - 2)
    return (row * (len(xs) - 1) + column).astype(np.int32)


ROOM_SHARE = 0.1  # of the frames with a face that show two people or more: a room


def layout_of(grid: Grid | None, frame: np.ndarray, person_id: np.ndarray) -> str:
    """``gallery`` with a grid; else ``room`` when at least :data:`ROOM_SHARE` of the frames with a face show
    two people or more; else ``single``."""
    if grid is not None:
        return "gallery"
    if len(frame) == 0:
        return "single"
    _, per_frame = np.unique(frame, return_counts=True)
    return "room" if (per_frame >= 2).mean() >= ROOM_SHARE else "single"
