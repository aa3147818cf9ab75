"""Personal data in the store: erasure of a video or of one face track, results replaced by a file's new
content, and the retention of face crops and face descriptors.

Erasures are recorded in the append-only ``erasures`` catalog table by content hash, scope and time, never
by path; erased videos are never extracted, predicted or read for training again until an undo. Reports
under the store keep an index of the videos they may show, so erasing a video removes them too.
"""

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from upath import UPath

from models.rules import BODY_TASKS
from tasks.store.files import (
    filter_face,
    parquet_file,
    read_table,
    remove_empty_folder,
    remove_tree,
    write_bytes_atomic,
)
from tasks.store.schemas import REPORT_INDEX


class ErasureMixin:
    """Erasure, superseded results and crops' retention of :class:`tasks.store.Store` (a mixin: it uses the store's
    partitions, catalog and predictions)."""

    # personal data: erasure, retention -------------------------------------------------------
    def _active_erasures(self) -> pd.DataFrame:
        """The erasures in force: for each (video, scope, face track), its last row when that is an erase."""
        rows = self.read_catalog("erasures")
        if rows.empty:
            return rows
        keys = rows[["video_id", "scope"]].assign(face_id=rows["face_id"].fillna(-1).astype("int64"))
        last = rows.loc[~keys.duplicated(keep="last")]
        return last[last["action"] == "erase"].reset_index(drop=True)

    def erased_videos(self) -> set[str]:
        """Videos erased as a whole: never extracted or predicted again (until an undo)."""
        active = self._active_erasures()
        return set(active.loc[active["scope"] == "video", "video_id"]) if not active.empty else set()

    def erased_face_tracks(self) -> dict[str, set[int]]:
        """Face tracks erased, by video: those videos are kept as they are, never re-extracted (a new
        extraction would assign new track ids and bring the person back)."""
        active = self._active_erasures()
        out: dict[str, set[int]] = {}
        if not active.empty:
            for row in active[active["scope"] == "face_track"].itertuples(index=False):
                out.setdefault(row.video_id, set()).add(int(row.face_id))
        return out

    def record_erasure(self, video_id: str, scope: str, face_id: int | None = None, action: str = "erase") -> bool:
        """Append an ``erasures`` row unless the erasure is already in that state; True when one was added."""
        if scope not in ("video", "face_track") or action not in ("erase", "undo"):
            raise ValueError(f"scope must be video or face_track and action erase or undo, got {scope}, {action}")
        if scope == "video":
            active = video_id in self.erased_videos()
        else:
            active = face_id in self.erased_face_tracks().get(video_id, set())
        if active == (action == "erase"):
            return False
        row = {"video_id": video_id, "scope": scope, "face_id": face_id, "action": action,
               "recorded_at": datetime.now(UTC)}  # fmt: skip
        self.append_catalog("erasures", pd.DataFrame([row]))
        return True

    def report_folders_showing(self, video_id: str) -> list[Path]:
        """Report folders under the store that may show ``video_id``: those whose index lists it, and those
        without an index (made before reports kept one)."""
        found = []
        for folder in sorted(p for p in self.reports_dir().glob("*") if p.is_dir()):
            index = folder / REPORT_INDEX
            if not index.is_file() or video_id in json.loads(index.read_text()):
                found.append(folder)
        return found

    def write_report_index(self, folder: Path, video_ids: Iterable[str]) -> None:
        """Record which videos a report folder may show, so that erasing one of them removes the report."""
        write_bytes_atomic(folder / REPORT_INDEX, json.dumps(sorted(set(video_ids))).encode())

    def upload_report(self, folder: Path) -> UPath:
        """Upload a report written in the local ``folder`` (with its index) to ``<store>/reports/<folder name>/`` on
        object storage, one whole-or-nothing upload per file, index first; return the report's folder there."""
        target = self.reports_dir() / folder.name
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name != REPORT_INDEX)
        for file in files:
            target.fs.put_file(str(file), (target / file.relative_to(folder).as_posix()).path)
        return target

    def _drop_catalog_rows(self, table: str, video_id: str) -> int:
        rows = self.read_catalog(table)
        keep = rows["video_id"] != video_id
        if keep.all():
            return 0
        self.write_catalog(table, rows[keep.fillna(True)])
        return int((~keep.fillna(True)).sum())

    def remove_results(self, video_id: str) -> dict[str, int]:
        """Remove what was derived from ``video_id``: its frames, body, crops and descriptors partitions, its
        predictions of every task and model version, its work fragments and training-cache entry, and its
        ``videos`` and ``people`` rows. Idempotent: returns what this call removed."""
        removed = {}
        for table in ("frames", "body", "crops", "descriptors"):
            removed[table] = int(remove_tree(self.partition(table, video_id).parent))
        removed["predictions"] = 0
        for folder in self.root.glob(f"predictions/task=*/model_version=*/video_id={video_id}"):
            remove_tree(folder)
            removed["predictions"] += 1
            remove_empty_folder(folder.parent)  # the version's folder, once its last video is gone
        removed["work"] = int(remove_tree(self.work_dir(video_id)))
        removed["training_cache"] = int(remove_tree(self.training_cache() / video_id))
        removed["videos_rows"] = self._drop_catalog_rows("videos", video_id)
        removed["people_rows"] = self._drop_catalog_rows("people", video_id)
        return removed

    def superseded_videos(self) -> set[str]:
        """Videos whose file now holds other content (a lesson re-exported or replaced in place): the path of
        their ``videos`` row is held by another id in the ``files`` catalog, and no file holds them any more.
        A file that only left the corpus keeps its results (its ``files`` row stays)."""
        files, videos = self.read_catalog("files"), self.read_catalog("videos")
        if files.empty or videos.empty:
            return set()
        now = dict(zip(files["path"], files["video_id"], strict=True))
        held = set(now.values())
        return {
            v for v, p in zip(videos["video_id"], videos["path"], strict=True) if v not in held and now.get(p, v) != v
        }

    def forget_video(self, video_id: str) -> dict[str, int]:
        """Remove everything derived from ``video_id`` and record the erasure (call under the writer lock).

        Removed: its results (:meth:`remove_results`), its ``files`` and ``failures`` rows, every ``failures`` row
        and ``runs`` corpus naming one of its paths (:meth:`forget_paths`), and the report folders that may show
        it. The erasure is recorded first, so an interrupted call leaves the video erased
        for later runs, and calling again finishes the removal. Idempotent: returns what this call removed.
        """
        paths = {p for table in ("videos", "files", "failures") for p in self._paths_of(table, video_id)}
        removed = {"erasure_recorded": int(self.record_erasure(video_id, "video")), **self.remove_results(video_id)}
        for table in ("files", "failures"):
            removed[f"{table}_rows"] = self._drop_catalog_rows(table, video_id)
        for key, count in self.forget_paths(paths).items():
            removed[key] = removed.get(key, 0) + count
        reports = self.report_folders_showing(video_id)
        for folder in reports:
            remove_tree(folder)
        removed["reports"] = len(reports)
        return removed

    def _paths_of(self, table: str, video_id: str) -> set[str]:
        rows = self.read_catalog(table)
        return set(rows.loc[rows["video_id"] == video_id, "path"].dropna())

    def forget_paths(self, paths: set[str]) -> dict[str, int]:
        """Remove the file names ``paths`` from the catalog rows that name a file without its video: ``failures``
        rows naming them (an unreadable file's row has no video id), and ``runs`` whose corpus was one of them
        (a run over a single file), whose corpus becomes null. Returns how many of each."""
        removed = {"failures_rows": 0, "runs_corpus": 0}
        failures = self.read_catalog("failures")
        hit = failures["path"].isin(paths).fillna(False)
        if hit.any():
            self.write_catalog("failures", failures[~hit])
            removed["failures_rows"] = int(hit.sum())
        runs = self.read_catalog("runs")
        hit = runs["corpus"].isin(paths).fillna(False)
        if hit.any():
            runs.loc[hit, "corpus"] = None
            self.write_catalog("runs", runs)
            removed["runs_corpus"] = int(hit.sum())
        return removed

    def face_ids(self, video_id: str) -> list[int]:
        """The face tracks in the video's frames partition (empty when it has none)."""
        path = self.partition("frames", video_id)
        if not path.is_file():
            return []
        return sorted({int(v) for v in read_table(path, columns=["face_id"])["face_id"].to_pylist()})

    def forget_person(self, video_id: str, person_id: int) -> dict[str, int]:
        """Remove one person (``frames.person_id``): each of their face tracks as :meth:`forget_face` does
        (each recorded as a face-track erasure), their body rows and the gesture predictions of their body.
        Call under the writer lock. Raises ValueError when the video has no such person."""
        path = self.partition("frames", video_id)
        frames = read_table(path, columns=["face_id", "person_id"]).to_pandas() if path.is_file() else None
        if frames is None or person_id not in set(frames["person_id"]):
            persons = [] if frames is None else sorted(set(frames["person_id"].dropna().astype(int)))
            raise ValueError(
                f"parameter person_id: video {video_id} has no person {person_id} "
                f"(its persons: {', '.join(map(str, persons)) or 'none'})"
            )
        removed: dict[str, int] = {}
        for face_id in sorted(set(frames.loc[frames["person_id"] == person_id, "face_id"].astype(int))):
            for key, count in self.forget_face(video_id, face_id).items():
                removed[key] = removed.get(key, 0) + count
        removed["body_rows"] = filter_face(self.partition("body", video_id), person_id, column="person_id")
        removed["predictions_rows"] += sum(  # body tasks' windows are per body person (their face_id)
            filter_face(path, person_id)
            for path in self.root.glob(f"predictions/task=*/model_version=*/video_id={video_id}/part-0.parquet")
            if path.parts[-4].removeprefix("task=") in BODY_TASKS
        )
        return removed

    def forget_face(self, video_id: str, face_id: int) -> dict[str, int]:
        """Remove one face track's rows (frames, crops, predictions of every face task and version) and record the
        erasure; the other faces' rows stay. The video's face descriptors and ``people`` rows go too (a person's
        descriptors may come from this track; the next ``--link-people`` run describes what is left). Body
        keypoints and gesture predictions are not linked to face tracks and stay (forget the video to remove
        them). Reports that may show the video, and its training clips
        (cached crops), are removed. Call under the writer lock.

        Raises ValueError when the video has no such face track and it was not erased before.
        """
        tracks = self.face_ids(video_id)
        already = face_id in self.erased_face_tracks().get(video_id, set())
        if face_id not in tracks and not already:
            raise ValueError(
                f"parameter face_id: video {video_id} has no face track {face_id} "
                f"(its tracks: {', '.join(map(str, tracks)) or 'none'})"
            )
        removed = {"erasure_recorded": int(self.record_erasure(video_id, "face_track", face_id))}
        frames_path = self.partition("frames", video_id)
        # file times are kept: the rows left mean what they meant, so predictions stay current and crops age on
        removed["frames_rows"] = filter_face(frames_path, face_id, keep_times=True)
        removed["crops_rows"] = filter_face(self.partition("crops", video_id), face_id, keep_times=True)
        removed["predictions_rows"] = sum(  # body tasks' rows are per body person, not linked to face tracks
            filter_face(path, face_id)
            for path in self.root.glob(f"predictions/task=*/model_version=*/video_id={video_id}/part-0.parquet")
            if path.parts[-4].removeprefix("task=") not in BODY_TASKS
        )
        if removed["frames_rows"]:
            persons = ["person_id"] if "person_id" in parquet_file(frames_path).schema_arrow.names else []
            frames = read_table(frames_path, columns=["frame", "face_id", *persons])
            videos = self.read_catalog("videos")
            at = videos["video_id"] == video_id
            videos.loc[at, "face_rows"] = frames.num_rows
            videos.loc[at, "face_tracks"] = len(set(frames["face_id"].to_pylist()))
            if persons:
                videos.loc[at, "persons"] = len(set(frames["person_id"].to_pylist()))
            videos.loc[at, "frames_with_face"] = len(set(frames["frame"].to_pylist()))
            self.write_catalog("videos", videos)
        removed["descriptors"] = int(remove_tree(self.partition("descriptors", video_id).parent))
        removed["people_rows"] = self._drop_catalog_rows("people", video_id)
        removed["work"] = int(remove_tree(self.work_dir(video_id)))
        # training clips of the video hold its faces' crops; training skips the video from now on
        removed["training_cache"] = int(remove_tree(self.training_cache() / video_id))
        reports = self.report_folders_showing(video_id)
        for folder in reports:
            remove_tree(folder)
        removed["reports"] = len(reports)
        return removed

    def extract_again(self, video_id: str) -> None:
        """Make the next run extract ``video_id`` again (its rows are replaced then): its ``videos`` row loses
        the extraction parameters, which a run compares with its own to tell that a video is done."""
        videos = self.read_catalog("videos")
        at = videos["video_id"] == video_id
        if at.any():
            videos.loc[at, "params"] = None
            self.write_catalog("videos", videos)

    def training_cache(self) -> Path:
        """``<store>/cache/clips``: training's extraction cache, one folder per video (content id)."""
        return self.root / "cache" / "clips"

    def training_exclusions(self) -> set[str]:
        """Videos training must not read from this store's corpus: erased ones, and those with an erased face
        track (a training clip is cut around one face, and would bring that person's crops back)."""
        return self.erased_videos() | set(self.erased_face_tracks())

    def crop_files(self) -> dict[str, os.stat_result]:  # on object storage: universal_pathlib's stat result
        """The crops partitions by video, with their ``stat`` (size, and mtime = when they were written)."""
        return {v: self.partition("crops", v).stat() for v in self.video_ids("crops")}

    def expire_crops(self, max_age_days: float, versions: dict[str, str], now: datetime | None = None) -> list[str]:
        """Delete the crops partitions older than ``max_age_days`` whose video has current predictions of every
        task by the version inference uses now (``versions``: task → version). Returns the videos whose crops
        were deleted. Crops whose predictions are missing or stale are kept: they are still needed."""
        if max_age_days < 0:
            raise ValueError(f"crops retention must be >= 0 days, got {max_age_days}")
        limit = (now or datetime.now(UTC)).timestamp() - max_age_days * 86400
        stale = {v for task, version in versions.items() for v in self.stale_videos(task, version)}
        expired = []
        for video_id, info in self.crop_files().items():
            if info.st_mtime < limit and video_id not in stale and self.has_partition("frames", video_id):
                remove_tree(self.partition("crops", video_id).parent)
                expired.append(video_id)
        return expired

    def expire_descriptors(self, max_age_days: float, now: datetime | None = None) -> list[str]:
        """Delete the face descriptors partitions older than ``max_age_days`` (the next ``--link-people`` run
        describes a video still in the corpus again); returns the videos affected."""
        if max_age_days < 0:
            raise ValueError(f"descriptors retention must be >= 0 days, got {max_age_days}")
        limit = (now or datetime.now(UTC)).timestamp() - max_age_days * 86400
        expired = [v for v in self.video_ids("descriptors") if self.partition("descriptors", v).stat().st_mtime < limit]
        for video_id in expired:
            remove_tree(self.partition("descriptors", video_id).parent)
        return expired
