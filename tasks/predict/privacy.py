"""Personal data in a store: what is kept by default, erasure by video or face track, crops' retention.

Least data by default. Aligned face crops (``crops`` table) are kept only for videos whose manifest ``role``
is ``teacher`` or unset; for any other role (``students``) they are opt-in (``keep_student_crops``), since
those videos show minors and crops are only a cache for reprocessing (a video still in the corpus can be
decoded again). :func:`video_params` makes that choice per video.

Erasure. :func:`forget` removes a video (or one face track of it) from the store through
``Store.forget_video`` / ``Store.forget_face`` and records it in the append-only ``erasures`` catalog table
by content hash (``video_id``), scope and time: never by path. Runs skip an erased video after hashing it:
``nightly-corpus`` drops it from discovery before the ``files`` cache is written (so its path is never kept;
the price is that an erased file still in the corpus is hashed again on every run), and inference never
predicts it. A video with an erased face track is not re-extracted either (new tracking would assign new
ids and bring the person back). ``undo`` lets later runs extract the video again (after a face-track undo,
once no track of the video stays erased, the next run extracts it again); it restores nothing.

Retention. :func:`expire_crops` deletes crops older than N days once the video has predictions of every task
by the version inference would use now (``tasks.predict.inference.current_version``), and face descriptors
(kept only with ``--link-people``, ``tasks.extract.linking``) older than N days: a later linking run describes a
video still in the corpus again.
"""

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

from models.rules import BODY_TASKS, TASK_CLASSES
from tasks.extract.discover import content_id
from tasks.extract.video import ExtractParams
from tasks.store import Store, path_text

DEFAULT_CROPS_RETENTION_DAYS = 30  # crops are a cache for reprocessing after a model promotion (see README)
CROP_ROLES = frozenset({"", "teacher"})  # manifest roles whose videos keep crops by default ("" = unset)
VIDEO_ID = re.compile(r"[0-9a-f]{16}")


def crops_allowed(meta: dict, keep_student_crops: bool = False) -> bool:
    """Whether a video with manifest metadata ``meta`` may keep face crops."""
    role = str(meta.get("role") or "").strip().lower()
    return role in CROP_ROLES or keep_student_crops


def video_params(params: ExtractParams, meta: dict, keep_student_crops: bool = False) -> ExtractParams:
    """The extraction parameters of one video: ``params`` without crops when its role does not allow them."""
    if params.keep_crops and not crops_allowed(meta, keep_student_crops):
        return dataclasses.replace(params, keep_crops=False)
    return params


def check_video_id(video_id: str) -> str:
    if not VIDEO_ID.fullmatch(video_id or ""):
        raise ValueError(f"parameter --video-id: {video_id!r} is not a video id (16 hex digits, see the videos table)")
    return video_id


def path_names(path: str | Path) -> set[str]:
    """The names the catalog may record for ``path``: resolved (a video's) and as given, made absolute (an
    unreadable entry's, such as a dangling link), as the catalog writes them (``tasks.store.path_text``)."""
    given = Path(path).expanduser()
    return {path_text(str(given.resolve())), path_text(str(given.absolute()))}


def video_ids_for_path(store: Store, path: str | Path) -> list[str]:
    """The video ids a path stands for: those the catalog (videos, files, failures) records for it, and the
    content hash of the file when it exists. Empty when only rows without a video id name it (an unreadable
    file's failures); ValueError naming ``--path`` when nothing does."""
    names = path_names(path)
    ids, named = set(), False
    for table in ("videos", "files", "failures"):
        rows = store.read_catalog(table)
        hit = rows["path"].isin(names)
        named = named or bool(hit.any())
        ids |= set(rows.loc[hit, "video_id"].dropna())
    resolved = Path(path).expanduser().resolve()
    if resolved.is_file():
        ids.add(content_id(resolved))
    if not ids and not named:
        raise ValueError(f"parameter --path: {path} is not a file and the store has no video with that path")
    return sorted(ids)


def forget(
    store: Store, video_ids: list[str], face_id: int | None = None, undo: bool = False, person_id: int | None = None
) -> list[dict]:
    """Erase (or with ``undo`` un-erase) each video, one face track of one video, or one person of one video
    (all their face tracks and their body); call under the writer lock. Returns one summary per video:
    ``video_id``, ``scope``, and what was removed (counts)."""
    scope = "video" if face_id is None else "face_track"
    if face_id is not None and len(video_ids) != 1:
        raise ValueError(f"parameter --face-id: needs exactly one video, the path stands for {len(video_ids)}")
    if person_id is not None:
        if face_id is not None or undo or len(video_ids) != 1:
            raise ValueError("parameter --person-id: needs exactly one video, without --face-id or --undo "
                             "(a person's erasure is recorded per face track: undo each with --face-id)")  # fmt: skip
        return [{"video_id": video_ids[0], "scope": "person", **store.forget_person(video_ids[0], person_id)}]
    out = []
    for video_id in video_ids:
        if undo:
            changed = store.record_erasure(video_id, scope, face_id, action="undo")
            if changed and scope == "face_track" and video_id not in store.erased_face_tracks():
                store.extract_again(video_id)  # its frames were filtered: the track comes back only by extraction
            out.append({"video_id": video_id, "scope": scope, "undone": int(changed)})
        elif face_id is None:
            out.append({"video_id": video_id, "scope": scope, **store.forget_video(video_id)})
        else:
            out.append({"video_id": video_id, "scope": scope, **store.forget_face(video_id, face_id)})
    return out


def check_retention(days: int | None) -> int | None:
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
        raise ValueError(f"parameter crops_retention_days: must be a whole number of days >= 0, got {days!r}")
    return days


def expire_crops(store: Store, days: int, now: datetime | None = None) -> list[str]:
    """Delete crops older than ``days`` whose predictions by the current models exist, and face descriptors older
    than ``days``; the videos whose crops were deleted."""
    from tasks.predict.inference import current_version  # torch: only where retention runs

    store.expire_descriptors(check_retention(days), now)
    # the face tasks read crops; gestures (body samples, whole frames) never do
    versions = {task: current_version(store, task) for task in TASK_CLASSES if task not in BODY_TASKS}
    return store.expire_crops(check_retention(days), versions, now)


def crop_holdings(store: Store, now: datetime | None = None) -> dict:
    """What the store holds in crops: ``videos``, ``bytes`` and ``oldest_days`` (age of the oldest; None)."""
    files = store.crop_files()
    now_s = (now or datetime.now(UTC)).timestamp()
    oldest = min((info.st_mtime for info in files.values()), default=None)
    return {
        "videos": len(files),
        "bytes": sum(info.st_size for info in files.values()),
        "oldest_days": None if oldest is None else max(0.0, (now_s - oldest) / 86400),
    }
