"""Persons across the videos of a course (``lessonlens run --link-people``): the teacher of twenty lessons is one
``person_key``, so per-teacher measures need no manifest ``teacher`` column.

Opt-in, because it keeps biometric data. Within a video, descriptors only live in the chunk fragments until the
video is finalised (:mod:`tasks.extract.identity`); linking across videos needs them kept, so with
``--link-people`` each video's persons are described and the descriptors kept in the video's ``descriptors``
partition (:data:`tasks.store.DESCRIPTOR_SCHEMA`): never in ``frames``, never readable by ``lessonlens query``
(``tasks.analyse.warehouse.connect`` allows the table folders the views read, not this one), never in a report
or artifact; removed by ``lessonlens forget`` (the video, a face track or a person of it) and by the crops'
retention (``tasks.predict.privacy.expire_crops``).

1. Describe (:func:`describe_persons`): for each person of a video's ``frames``, the rows with a usable face
   (landmark box at least :data:`~tasks.extract.identity.MIN_FACE_PX` high, yaw and pitch within
   :data:`~tasks.extract.identity.MAX_TURN`) are cut, in frame order, into :data:`PER_PERSON` equal stretches and
   the largest face of each is described: faces from across the lesson, not one moment of it. Only those frames
   are decoded again. A video is described once, and again when its ``frames`` are newer than its descriptors
   (extracted again, or a face track erased, which removes them).
2. Link (:func:`link_course`): per course (the manifest's ``course``; videos without one form one course),
   the persons of its described videos are merged closest-first on their mean descriptors below
   :data:`~tasks.extract.identity.LINK_DISTANCE`, two persons of one video never
   (:func:`tasks.extract.identity.link_groups` with the video in place of the frame). A person without a usable
   face stays alone.
3. The ``people`` catalog is rewritten: one row per person of every linked video, ``person_key`` =
   ``"<video_id>:<person_id>"`` of the group's appearance in the earliest extracted video of the course (so a key
   stays the same while that video stays in the store).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from models.layout import DESCRIPTOR_SIZE, N_LANDMARKS
from tasks.extract.decode import VideoError
from tasks.extract.identity import describe_at, descriptor_column, descriptor_matrix, link_groups, usable_faces
from tasks.store import DESCRIPTOR_SCHEMA, Store, read_table, shown, write_table_atomic

PER_PERSON = 3  # faces described per person of a video
_LANDMARK_COLUMNS = [f"{axis}_{i}" for axis in "xy" for i in range(N_LANDMARKS)]

logger = logging.getLogger("lessonlens")


def describe_persons(frames: pa.Table, path: str, video_id: str, storage_options: dict | None = None) -> pa.Table:
    """Descriptors (:data:`tasks.store.DESCRIPTOR_SCHEMA`) of up to :data:`PER_PERSON` faces per person of a video
    whose ``frames`` rows are given (columns ``frame``, ``timestamp``, ``person_id``, ``pose_Rx``, ``pose_Ry`` and the
    landmarks), from the video at ``path`` (decord, PyAV where decord fails, as extraction decodes; a face whose
    frame neither decodes is left out); VideoError when it cannot be opened."""
    columns = {name: frames[name].to_numpy() for name in ("frame", "timestamp", "person_id", "pose_Rx", "pose_Ry")}
    xy = np.stack([frames[c].to_numpy() for c in _LANDMARK_COLUMNS], axis=1).astype(np.float32)
    landmarks = np.stack([xy[:, :N_LANDMARKS], xy[:, N_LANDMARKS:]], axis=2)  # (N, 68, 2)
    height, usable = usable_faces(landmarks, np.stack([columns["pose_Rx"], columns["pose_Ry"]], axis=1))
    chosen = []
    for person in np.unique(columns["person_id"]):
        rows = np.flatnonzero((columns["person_id"] == person) & usable)
        rows = rows[np.argsort(columns["frame"][rows], kind="stable")]
        chosen += [int(part[np.argmax(height[part])]) for part in np.array_split(rows, PER_PERSON) if len(part)]
    vectors = describe_at(
        path, video_id, storage_options, columns["frame"][chosen], columns["timestamp"][chosen], landmarks[chosen]
    )
    described = ~np.isnan(vectors[:, 0])
    kept = np.asarray(chosen, np.int64)[described]
    return pa.table(
        {
            "person_id": pa.array(columns["person_id"][kept], pa.int32()),
            "frame": pa.array(columns["frame"][kept], pa.int32()),
            "descriptor": descriptor_column(vectors[described]),
        },
        schema=DESCRIPTOR_SCHEMA,
    )


def link_course(persons: list[tuple[str, int]], descriptors: Mapping[tuple[str, int], np.ndarray]) -> list[str]:
    """The ``person_key`` of each of ``persons`` ((video_id, person_id), earliest video first) from their
    ``descriptors`` ((k, 128) each; a person without any is alone): see the module docstring."""
    if not persons:
        return []
    videos = {video: rank for rank, video in enumerate(dict.fromkeys(v for v, _ in persons))}
    segment, frame, rows = [], [], []
    for index, person in enumerate(persons):
        found = descriptors.get(person, np.zeros((0, DESCRIPTOR_SIZE), np.float32))
        for vector in found if len(found) else [np.full(DESCRIPTOR_SIZE, np.nan, np.float32)]:
            segment.append(index)
            frame.append(videos[person[0]])
            rows.append(vector)
    group_of_row = link_groups(np.array(segment), len(persons), np.array(frame), np.array(rows, np.float32))
    group = np.empty(len(persons), np.int64)
    group[np.array(segment)] = group_of_row
    first: dict[int, tuple[str, int]] = {}
    for person, g in zip(persons, group, strict=True):
        first.setdefault(int(g), person)  # persons come earliest video first, then by person_id
    return [f"{first[int(g)][0]}:{first[int(g)][1]}" for g in group]


def link_people(store: Store, paths: Mapping[str, str]) -> dict[str, int]:
    """Describe the store's extracted videos that need it (those in ``paths``, video_id → path of the current
    corpus: a video no longer in the corpus cannot be decoded, and keeps the descriptors it has) and rewrite the
    ``people`` catalog; call under the writer lock. Returns ``described`` (videos described now), ``linked``
    (videos in ``people``) and ``people`` (distinct person keys). A video that cannot be decoded is named in a
    warning and left unlinked; the others go on."""
    videos = store.read_catalog("videos")
    videos = videos[(videos["status"] == "ok") & videos["video_id"].map(lambda v: store.has_partition("frames", v))]
    erased = store.erased_videos()
    videos = videos[~videos["video_id"].isin(erased)].sort_values(["extracted_at", "video_id"], kind="stable")
    described = 0
    for video_id in videos["video_id"]:
        frames_path, kept = store.partition("frames", video_id), store.partition("descriptors", video_id)
        if video_id not in paths or (kept.is_file() and kept.stat().st_mtime >= frames_path.stat().st_mtime):
            continue
        wanted = ["frame", "timestamp", "person_id", "pose_Rx", "pose_Ry", *_LANDMARK_COLUMNS]
        frames = read_table(frames_path, columns=wanted)
        try:
            table = describe_persons(frames, paths[video_id], video_id, store.storage_options)
        except (VideoError, ValueError, OSError) as exc:
            logger.warning("%s: not linked to other videos: its faces could not be described (%s)",
                           shown(paths[video_id]), shown(str(exc)))  # fmt: skip
            continue
        write_table_atomic(table, kept)
        described += 1
    rows = []
    now = datetime.now(UTC)
    for course, members in videos.groupby(videos["course"].fillna(""), sort=True):
        persons, descriptors = [], {}
        for video_id in members["video_id"]:
            if not store.has_partition("descriptors", video_id):
                continue
            ids = read_table(store.partition("frames", video_id), columns=["person_id"])["person_id"].to_numpy()
            persons += [(video_id, int(p)) for p in np.unique(ids)]
            table = read_table(store.partition("descriptors", video_id))
            vectors = descriptor_matrix(table["descriptor"])
            for person in np.unique(table["person_id"].to_numpy()):
                descriptors[(video_id, int(person))] = vectors[table["person_id"].to_numpy() == person]
        for (video_id, person_id), key in zip(persons, link_course(persons, descriptors), strict=True):
            rows.append({"video_id": video_id, "person_id": person_id, "person_key": key, "course": course,
                         "linked_at": now})  # fmt: skip
    people = pd.DataFrame(rows, columns=["video_id", "person_id", "person_key", "course", "linked_at"])
    store.write_catalog("people", people)
    return {
        "described": described,
        "linked": int(people["video_id"].nunique()),
        "people": int(people["person_key"].nunique()),
    }
