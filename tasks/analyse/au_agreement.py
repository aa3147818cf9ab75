"""Check it on your data first: our AUs against OpenFace's on the same video.

AU agreement (``lessonlens evaluate --au-reference openface.csv --video V``): our AU intensities of the
video's primary face (the track with the most samples) against an OpenFace CSV of the same video,
aligned by timestamp (:func:`align_nearest`), per AU present in both: Pearson r, ICC(3,1)
(:func:`icc_3_1`), mean absolute difference and n.

``flows/evaluate.py`` runs the pipeline on the video; this module holds the plain functions around it.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tasks.analyse.evaluate import jsonable
from tasks.store import Store

AU_PATTERN = re.compile(r"^AU\d{2}_r$")


def read_openface(path: str | Path, video_fps: float | None = None) -> pd.DataFrame:
    """An OpenFace CSV as ``timestamp`` + its ``AUxx_r`` columns (names stripped of OpenFace's spaces).

    Rows with ``success`` 0 are dropped. Without a ``timestamp`` column the time is ``(frame - 1) /
    video_fps`` (OpenFace numbers frames from 1). Errors name the file and column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--au-reference {path} does not exist")
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not an OpenFace CSV ({' '.join(str(exc).split())})") from None
    table.columns = [str(c).strip() for c in table.columns]
    aus = [c for c in table.columns if AU_PATTERN.match(c)]
    if not aus:
        raise ValueError(f"{path}: no AUxx_r columns (OpenFace intensity columns such as AU12_r)")
    if "face_id" in table.columns and table["face_id"].nunique() > 1:
        raise ValueError(f"{path}: column face_id: {table['face_id'].nunique()} faces; keep one face's rows")
    if "success" in table.columns:
        table = table[pd.to_numeric(table["success"], errors="coerce") == 1]
    if table.empty:
        raise ValueError(f"{path}: no rows{' with success 1' if 'success' in table.columns else ''}")
    if "timestamp" in table.columns:
        times = pd.to_numeric(table["timestamp"], errors="coerce")
        column = "timestamp"
    elif "frame" in table.columns:
        if not video_fps:
            raise ValueError(f"{path}: no timestamp column, and the video's frame rate is unknown")
        times = (pd.to_numeric(table["frame"], errors="coerce") - 1) / video_fps
        column = "frame"
    else:
        raise ValueError(f"{path}: needs a timestamp or a frame column")
    if times.isna().any():
        raise ValueError(f"{path}: column {column}: {int(times.isna().sum())} values are not numbers")
    out = pd.DataFrame({"timestamp": times.to_numpy(np.float64)})
    for au in aus:
        values = pd.to_numeric(table[au], errors="coerce")
        if values.isna().any():
            raise ValueError(f"{path}: column {au}: {int(values.isna().sum())} values are not numbers")
        out[au] = values.to_numpy(np.float64)
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def align_nearest(ours: np.ndarray, reference: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ours, reference): each of our times with the nearest reference time, kept when they are
    at most ``tolerance`` apart. ``reference`` must be sorted."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if reference.size == 0 or ours.size == 0:
        return np.array([], dtype=int), np.array([], dtype=int)
    right = np.clip(np.searchsorted(reference, ours), 0, reference.size - 1)
    left = np.clip(right - 1, 0, reference.size - 1)
    nearest = np.where(np.abs(reference[left] - ours) <= np.abs(reference[right] - ours), left, right)
    keep = np.abs(reference[nearest] - ours) <= tolerance + 1e-9
    return np.flatnonzero(keep), nearest[keep]


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN with fewer than 2 pairs or when either series is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def icc_3_1(ratings: np.ndarray) -> float:
    """ICC(3,1), Shrout & Fleiss (1979): two-way mixed effects, consistency, single rater.

    ``ratings`` is n targets × k raters (here: samples × {ours, reference}). With grand mean m, row
    (target) means r_i and column (rater) means c_j::

        SS_R = k Σ_i (r_i - m)²            MS_R = SS_R / (n - 1)
        SS_C = n Σ_j (c_j - m)²
        SS_E = Σ_ij (y_ij - m)² - SS_R - SS_C   MS_E = SS_E / ((n - 1)(k - 1))
        ICC(3,1) = (MS_R - MS_E) / (MS_R + (k - 1) MS_E)

    A constant offset between raters goes into SS_C, not SS_E, so it leaves ICC(3,1) unchanged
    (consistency, not absolute agreement). NaN with fewer than 2 targets or when the denominator is 0.
    """
    y = np.asarray(ratings, np.float64)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"ratings must be targets × raters with at least 2 raters, got shape {y.shape}")
    n, k = y.shape
    if n < 2:
        return math.nan
    m = y.mean()
    ss_r = k * float(((y.mean(axis=1) - m) ** 2).sum())
    ss_c = n * float(((y.mean(axis=0) - m) ** 2).sum())
    ss_e = float(((y - m) ** 2).sum()) - ss_r - ss_c
    ms_r = ss_r / (n - 1)
    ms_e = max(ss_e, 0.0) / ((n - 1) * (k - 1))
    denominator = ms_r + (k - 1) * ms_e
    return (ms_r - ms_e) / denominator if denominator > 0 else math.nan


def au_agreement(ours: pd.DataFrame, reference: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per AU in both tables (``timestamp`` + ``AUxx_r``): n, pearson_r, icc_3_1, mean_abs_diff and the
    two means, over our samples matched to a reference row within ``tolerance`` seconds."""
    reference = reference.sort_values("timestamp", kind="stable").reset_index(drop=True)
    i, j = align_nearest(ours["timestamp"].to_numpy(), reference["timestamp"].to_numpy(), tolerance)
    if not len(i):
        span = {k: f"{t['timestamp'].min():.2f}-{t['timestamp'].max():.2f} s" for k, t in (("ours", ours),
                ("reference", reference)) if len(t)}  # fmt: skip
        raise ValueError(
            f"no reference row within {tolerance:g} s of any of our {len(ours)} samples (times: {span}); is it "
            "the same video, with times in seconds from its start?"
        )
    rows = []
    for au in [c for c in ours.columns if AU_PATTERN.match(c) and c in reference.columns]:
        a = ours[au].to_numpy(np.float64)[i]
        b = reference[au].to_numpy(np.float64)[j]
        both = np.isfinite(a) & np.isfinite(b)
        a, b = a[both], b[both]
        rows.append({
            "au": au, "n": int(a.size), "pearson_r": pearson_r(a, b),
            "icc_3_1": icc_3_1(np.stack([a, b], axis=1)) if a.size else math.nan,
            "mean_abs_diff": float(np.abs(a - b).mean()) if a.size else math.nan,
            "mean_ours": float(a.mean()) if a.size else math.nan,
            "mean_reference": float(b.mean()) if a.size else math.nan,
        })  # fmt: skip
    if not rows:
        raise ValueError(f"no AU column in common; ours: {[c for c in ours.columns if AU_PATTERN.match(c)]}")
    return pd.DataFrame(rows)


def primary_face_aus(store: str | Path, video_id: str) -> pd.DataFrame:
    """``timestamp`` and ``AUxx_r`` of the video's track with the most samples (empty without faces)."""
    table = pq.read_table(Store(store).partition("frames", video_id)).to_pandas()
    columns = ["timestamp", *[c for c in table.columns if AU_PATTERN.match(c)]]
    if table.empty:
        return table[columns]
    primary = table["face_id"].value_counts().idxmax()
    return table.loc[table["face_id"] == primary, columns].sort_values("timestamp").reset_index(drop=True)


def write_au_agreement(out: str | Path, table: pd.DataFrame, facts: dict) -> None:
    """``au_agreement.csv`` and ``au_agreement.json`` (facts + one record per AU) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "au_agreement.csv", index=False)
    records = jsonable(table.to_dict("records"))
    (out / "au_agreement.json").write_text(json.dumps({**facts, "aus": records}, indent=2) + "\n")
