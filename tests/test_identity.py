"""Persons: one ``person_id`` per person through a gallery reorder, a leave and re-entry, and in a room; the
linking rules on made-up descriptors; gallery grids."""

import logging

import numpy as np
import pytest

from tasks.extract.gallery import detect_grid, layout_of, tile_of, video_grid
from tasks.extract.identity import DESCRIPTOR_SIZE, LINK_DISTANCE, assign_person_ids
from tasks.synthetic.people import purity, write_camera_move, write_gallery, write_reentry, write_room


def _extract(path, tmp_path, **params):
    """The clip through the real extraction (decode, faces, descriptors, tracks, persons) into a store."""
    from tasks.extract.discover import VideoRef
    from tasks.extract.video import ExtractParams, extract_chunk, extract_video
    from tasks.store import Store, read_table

    store = Store(tmp_path / "store").ensure()
    options = {"fps": 5, "body_fps": 0, "keep_crops": True, **params}
    ref = VideoRef("v", str(path), path.stat().st_size, 0, {})
    result = extract_video(ref, ExtractParams(**options), store, lambda jobs: list(map(extract_chunk, jobs)))
    assert result.status == "ok", result.error if hasattr(result, "error") else result
    frames = read_table(store.partition("frames", "v")).to_pandas()
    crops = read_table(store.partition("crops", "v")).to_pandas() if options["keep_crops"] else None
    return result, frames, crops


def _score(truth, frames):
    cx, cy = frames.bbox_x + frames.bbox_w / 2, frames.bbox_y + frames.bbox_h / 2
    return purity(truth, frames.timestamp, cx, cy, frames.person_id)


def test_gallery_reorder_keeps_one_id_per_person(media_dir, tmp_path):
    people = ["wolfgang", "kindel", "cremad", "hanks"]
    truth = write_gallery(tmp_path / "gallery.mp4", people, media_dir, seconds=10.0, reorder_at=5.0)
    result, frames, crops = _extract(tmp_path / "gallery.mp4", tmp_path)
    value, ids, rows = _score(truth, frames)
    assert rows > 0.9 * 4 * 50  # the four people are found in nearly every sampled frame
    assert ids == 4 and value >= 0.95, (ids, value)
    assert result.info["layout"] == "gallery" and result.counts["persons"] == 4
    # a track keeps its tile: the reorder cuts every track, so there are more tracks than people
    assert frames.groupby("face_id").tile.nunique().max() == 1 and frames.face_id.nunique() >= 8
    assert set(frames.tile) == {0, 1, 2, 3}
    # crops carry the same person as their frames row
    assert (crops.sort_values(["frame", "face_id"]).person_id.to_numpy()
            == frames.sort_values(["frame", "face_id"]).person_id.to_numpy()).all()  # fmt: skip


def test_leaving_and_coming_back_elsewhere_is_one_person(media_dir, tmp_path):
    truth = write_reentry(tmp_path / "reentry.mp4", "wolfgang", media_dir)
    result, frames, _ = _extract(tmp_path / "reentry.mp4", tmp_path, keep_crops=False)
    value, ids, rows = _score(truth, frames)
    assert rows >= 40 and ids == 1 and value == 1.0
    assert frames.face_id.nunique() >= 2  # the tracker alone sees two people (the face came back elsewhere)
    assert result.info["layout"] == "single"


def test_a_camera_move_in_a_room_of_four_keeps_four_people(media_dir, tmp_path):
    # a wide shot of four small faces (45-115 px high), then the camera zooms and pans: boxes jump, a person leaves
    people = ("wolfgang", "cremad", "selfie", "hanks")
    truth = write_camera_move(tmp_path / "move.mp4", people, media_dir, size=(640, 360))
    result, frames, _ = _extract(tmp_path / "move.mp4", tmp_path, keep_crops=False)
    value, ids, rows = _score(truth, frames)
    assert rows > 0.9 * (4 * 65 + 3 * 35) and ids == 4 and value == 1.0, (rows, ids, value)
    assert frames.face_id.nunique() > 4  # the tracker alone cuts tracks at the move
    assert result.info["layout"] == "room"


def test_without_descriptors_each_track_is_a_person(media_dir, tmp_path):
    write_reentry(tmp_path / "reentry.mp4", "wolfgang", media_dir)
    result, frames, _ = _extract(tmp_path / "reentry.mp4", tmp_path, keep_crops=False, descriptor_seconds=0)
    assert (frames.person_id == frames.face_id).all() and frames.person_id.nunique() >= 2


def test_two_people_in_a_room_each_body_carries_its_person(media_dir, tmp_path):
    from tasks.store import read_table
    from tasks.synthetic.people import true_person

    truth = write_room(tmp_path / "room.mp4", ("wolfgang", "kindel"), media_dir)
    result, frames, _ = _extract(tmp_path / "room.mp4", tmp_path, keep_crops=False, body_fps=1)
    value, ids, _ = _score(truth, frames)
    assert ids == 2 and value >= 0.95
    assert result.info["layout"] == "room" and (frames.tile == -1).all()
    who = true_person(truth)
    cx, cy = frames.bbox_x + frames.bbox_w / 2, frames.bbox_y + frames.bbox_h / 2
    frames["truth"] = [who(t, x, y) for t, x, y in zip(frames.timestamp, cx, cy, strict=True)]
    name_of = frames.groupby("person_id").truth.agg(lambda s: s.mode()[0]).to_dict()
    body = read_table(tmp_path / "store" / "body" / "video_id=v" / "part-0.parquet").to_pandas()
    linked = body[body.person_id >= 0]
    assert len(linked) >= 0.75 * len(body) and set(linked.person_id) == set(name_of)  # both people have bodies
    assert linked.groupby("frame").person_id.nunique().max() == 2  # two bodies in one frame
    for row in linked.itertuples():
        assert who(row.timestamp, row.nose_x, row.nose_y) == name_of[row.person_id]


# linking rules on made-up descriptors ------------------------------------------------------------------------
def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DESCRIPTOR_SIZE)
    return v / np.linalg.norm(v)  # two such vectors lie about 1.4 apart


def _faces(n: int, x: float):
    boxes = np.tile([x, 100.0, x + 80.0, 180.0], (n, 1))
    landmarks = np.tile(np.stack([np.linspace(x + 5, x + 75, 68), np.linspace(105, 175, 68)], 1), (n, 1, 1))
    return boxes, landmarks


def test_tracks_that_share_a_frame_are_never_one_person():
    frame = np.repeat(np.arange(10), 2)  # two faces in every frame, with the same descriptor
    boxes = np.concatenate([np.stack(_faces(1, x)[0]) for _ in range(10) for x in (0.0, 300.0)]).reshape(-1, 4)
    landmarks = np.concatenate([_faces(1, x)[1] for _ in range(10) for x in (0.0, 300.0)])
    descriptors = np.tile(_unit(0), (20, 1)).astype(np.float32)
    face_id = np.tile([0, 1], 10)
    tracks, persons = assign_person_ids(frame, face_id, boxes, landmarks, descriptors)
    assert len(set(persons[::2])) == 1 and len(set(persons[1::2])) == 1 and persons[0] != persons[1]


def test_tracks_apart_in_time_with_close_descriptors_merge_and_far_ones_do_not():
    frame = np.arange(30)
    boxes, landmarks = _faces(30, 0.0)
    face_id = np.repeat([0, 1, 2], 10)
    a, b = _unit(1), _unit(2)
    near = a + 0.4 * LINK_DISTANCE * _unit(3)
    descriptors = np.full((30, DESCRIPTOR_SIZE), np.nan, np.float32)
    descriptors[[2, 12, 22]] = [a, b, near]
    _, persons = assign_person_ids(frame, face_id, boxes, landmarks, descriptors)
    assert persons[0] == persons[25] != persons[15]
    assert persons.tolist() == [0] * 10 + [1] * 10 + [0] * 10


def test_a_track_whose_person_changes_is_cut_where_the_face_jumps():
    frame = np.arange(20)
    boxes, landmarks = _faces(20, 0.0)
    boxes[13:] += [6.0, 0.0, 6.0, 0.0]  # the new face sits a little to the right, from frame 13 on
    landmarks[13:, :, 0] += 6.0
    descriptors = np.full((20, DESCRIPTOR_SIZE), np.nan, np.float32)
    descriptors[[0, 5, 10]] = _unit(4)
    descriptors[[15, 19]] = _unit(5)
    tracks, persons = assign_person_ids(frame, np.zeros(20, np.int32), boxes, landmarks, descriptors)
    assert tracks.tolist() == [0] * 13 + [1] * 7 and persons.tolist() == tracks.tolist()


def test_bad_descriptor_shape_is_refused():
    boxes, landmarks = _faces(3, 0.0)
    with pytest.raises(ValueError, match="descriptors must be"):
        assign_person_ids(np.arange(3), np.zeros(3), boxes, landmarks, np.zeros((3, 5)))


# gallery grids ------------------------------------------------------------------------------------------------
def _canvas(tiles_shown: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    canvas = np.full((360, 640, 3), 30, np.uint8)
    for x, y in [(6, 6), (323, 6), (6, 183), (323, 183)][:tiles_shown]:
        canvas[y : y + 171, x : x + 311] = rng.integers(0, 255, (171, 311, 3))
    return canvas


def test_a_gallery_grid_is_found_and_faces_get_their_tile():
    grid = detect_grid(_canvas(4))
    assert grid is not None and len(grid[0]) == 3 and len(grid[1]) == 3
    assert detect_grid(_canvas(3)) == grid  # an app leaves unused tiles empty
    boxes = np.array([[50, 50, 90, 90], [400, 50, 440, 90], [50, 250, 90, 290], [400, 250, 440, 290]], float)
    assert tile_of(grid, boxes).tolist() == [0, 1, 2, 3]
    assert tile_of(None, boxes).tolist() == [-1] * 4


def test_no_grid_in_a_real_scene_a_single_tile_or_a_fade(media_dir):
    from tasks.extract.decode import decode_frames, open_video

    reader = open_video(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4")
    _, pixels = next(iter(decode_frames(reader, (100,))))
    assert detect_grid(pixels) is None
    assert detect_grid(_canvas(1)) is None
    fade = _canvas(4)
    fade[:150] = 14  # a dark band over the top of a frame is not a row of tiles
    fade[160:] = np.random.default_rng(1).integers(0, 255, (200, 640, 3))
    assert detect_grid(fade) is None


def test_video_grid_needs_half_the_chunks_and_layouts():
    grid = detect_grid(_canvas(4))
    from tasks.extract.gallery import grid_metadata

    assert video_grid([grid_metadata(grid)] * 2 + [grid_metadata(None)]) == grid
    assert video_grid([grid_metadata(grid)] + [grid_metadata(None)] * 2) is None
    assert layout_of(grid, np.array([0]), np.array([0])) == "gallery"
    assert layout_of(None, np.array([0, 0, 1, 2]), np.array([0, 1, 0, 0])) == "room"
    assert layout_of(None, np.array([0, 1, 2]), np.array([0, 0, 0])) == "single"


def _two_person_store(root):
    """A generated lesson store (tests.test_marts) whose video v00 has tracks 0 (100 rows) and 2 (50 rows) of
    person 0 and track 1 (120 rows) of person 1; its body rows are person 0's."""
    import pyarrow as pa

    from tasks.store import read_table, write_table_atomic
    from tests.test_marts import design, write_lesson_store

    store = write_lesson_store(root, design()[:1])
    path = store.partition("frames", "v00")
    frames = read_table(path).slice(0, 270)
    tracks = np.r_[np.zeros(100), np.ones(120), np.full(50, 2)].astype(np.int32)
    persons = np.r_[np.zeros(100), np.ones(120), np.zeros(50)].astype(np.int32)
    frames = frames.set_column(frames.schema.get_field_index("face_id"), "face_id", pa.array(tracks))
    frames = frames.set_column(frames.schema.get_field_index("person_id"), "person_id", pa.array(persons))
    write_table_atomic(frames, path)
    return store


def test_the_primary_person_counts_all_of_their_tracks(tmp_path):
    """A person seen in two tracks (150 rows) outweighs someone else's single longer track (120 rows)."""
    from tasks.analyse import warehouse

    store = _two_person_store(tmp_path / "store")
    with warehouse.connect(store) as con:
        primary = con.sql("select person_id, n_frames from primary_faces where video_id = 'v00'").fetchall()
        summary = con.sql("select primary_person_id from video_summary where video_id = 'v00'").fetchall()
    assert primary == [(0, 150)] and summary == [(0,)]


def test_forgetting_a_person_erases_all_their_tracks_and_their_body(tmp_path):
    from tasks.predict.privacy import forget
    from tasks.store import read_table

    store = _two_person_store(tmp_path / "store")
    path = store.partition("frames", "v00")
    body = read_table(store.partition("body", "v00"))
    assert set(body["person_id"].to_pylist()) == {0} and body.num_rows > 0  # the generated body is person 0's
    with pytest.raises(ValueError, match="has no person 7 .its persons: 0, 1"):
        forget(store, ["v00"], person_id=7)
    with pytest.raises(ValueError, match="--person-id"):
        forget(store, ["v00"], face_id=1, person_id=0)
    (done,) = forget(store, ["v00"], person_id=0)
    assert done["scope"] == "person" and done["frames_rows"] == 150 and done["body_rows"] == body.num_rows
    left = read_table(path)
    assert set(left["face_id"].to_pylist()) == {1} and set(left["person_id"].to_pylist()) == {1}
    assert read_table(store.partition("body", "v00")).num_rows == 0
    assert store.erased_face_tracks() == {"v00": {0, 2}}


def test_without_the_recognition_weights_a_run_goes_on_with_descriptors_off(tmp_path, monkeypatch, caplog):
    """No weights cache (setup not run): the run's parameters turn descriptors off with one line saying how to
    get them (each track is then its own person) instead of every video failing in extraction."""
    from flows.nightly_corpus import extract_params
    from models import faceapi_package

    assert extract_params(5.0, 10, "mediapipe", None, 1.0, None, True).descriptor_seconds > 0  # setup's cache
    monkeypatch.setenv(faceapi_package.ENV_DIR, str(tmp_path / "no-weights"))
    logger = logging.getLogger("lessonlens")
    logger.addHandler(caplog.handler)  # importing Prefect reconfigured the root logger's handlers
    try:
        params = extract_params(5.0, 10, "mediapipe", None, 1.0, None, True)
    finally:
        logger.removeHandler(caplog.handler)
    assert params.descriptor_seconds == 0
    (line,) = {r.getMessage() for r in caplog.records if r.name == "lessonlens"}  # root's handler may see it too
    assert f"face recognition weights not found at {tmp_path / 'no-weights'}" in line and "make setup" in line
    assert "its own person" in line
