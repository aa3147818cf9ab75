"""Persons across the videos of a course (``--link-people``): one person_key for one person's lessons, never
across courses; descriptors kept only when asked, out of the query's reach, erased and expired; the linking
rules on made-up descriptors."""

import logging
import shutil
from datetime import UTC, datetime, timedelta

import numpy as np

from flows.cli import main
from models.layout import DESCRIPTOR_SIZE
from tasks.analyse.warehouse import run_query
from tasks.extract.linking import link_course, link_people
from tasks.store import Store

# CREMA-D actor 1001 in three clips (two in course c1, one in c2) and another person in c1
CLIPS = {
    "1001_DFA_NEU_XX.flv": "c1",
    "1001_DFA_HAP_XX.flv": "c1",
    "pyfeat_single_face.mp4": "c1",
    "1001_DFA_SAD_XX.flv": "c2",
}


def _corpus(media_dir, folder, names):
    folder.mkdir(exist_ok=True)
    for name in names:
        source = media_dir / "cremad" / name if name.startswith("1001") else media_dir / name
        shutil.copy(source, folder / name)
    lines = ["path,course", *(f"{name},{CLIPS[name]}" for name in names)]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")


def _run(corpus, store, *extra):
    return main(["run", str(corpus), "--store", str(store), "--fps", "2", "--body-fps", "0", "--workers", "1", *extra])


def _ids(store):
    videos = store.read_catalog("videos")
    return {path.rsplit("/", 1)[-1]: v for path, v in zip(videos["path"], videos["video_id"], strict=True)}


def _keys(store):
    rows = run_query(
        store, "select v.path, p.person_key from people p join videos v using (video_id) where p.person_id = 0"
    ).to_pylist()
    return {row["path"].rsplit("/", 1)[-1]: row["person_key"] for row in rows}


def test_a_persons_lessons_share_one_key_within_a_course_and_their_descriptors_are_personal_data(
    media_dir, tmp_path, capsys, caplog
):
    corpus, root = tmp_path / "corpus", tmp_path / "store"
    names = list(CLIPS)
    _corpus(media_dir, corpus, names[:3])
    assert _run(corpus, root) == 0
    store = Store(root)
    assert not (root / "descriptors").exists() and store.read_catalog("people").empty  # off by default

    _corpus(media_dir, corpus, names)  # a new lesson in another course; now linked (the flow's path)
    assert _run(corpus, root, "--link-people") == 0
    assert "3 persons in 4 linked videos" in capsys.readouterr().out
    keys = _keys(store)
    assert keys["1001_DFA_NEU_XX.flv"] == keys["1001_DFA_HAP_XX.flv"]  # one actor, two lessons of c1
    assert keys["pyfeat_single_face.mp4"] != keys["1001_DFA_NEU_XX.flv"]  # another person
    assert keys["1001_DFA_SAD_XX.flv"] not in (keys["1001_DFA_NEU_XX.flv"], keys["pyfeat_single_face.mp4"])
    assert len(store.video_ids("descriptors")) == 4
    # per-teacher measures need no manifest teacher: a lesson's teacher is its primary person's key
    teachers = run_query(store, "select path, teacher, primary_person_key from teacher_videos").to_pylist()
    assert all(t["teacher"] == t["primary_person_key"] == keys[t["path"].rsplit("/", 1)[-1]] for t in teachers)
    assert run_query(store, "select count(*) as n from teacher_summary").to_pylist() == [{"n": 3}]

    assert _run(corpus, root, "--link-people") == 0  # nothing new: linked without Prefect, nothing described
    assert "nothing to do" in capsys.readouterr().out and _keys(store) == keys

    # a video that cannot be decoded again is named and left unlinked; the others stay linked
    sad = _ids(store)["1001_DFA_SAD_XX.flv"]
    shutil.rmtree(store.partition("descriptors", sad).parent)
    logger = logging.getLogger("lessonlens")
    logger.addHandler(caplog.handler)  # importing Prefect reconfigured the root logger's handlers
    try:
        counts = link_people(store, {sad: str(tmp_path / "moved-away.flv")})
    finally:
        logger.removeHandler(caplog.handler)
    assert counts == {"described": 0, "linked": 3, "people": 2}
    assert any("moved-away.flv: not linked to other videos" in r.getMessage() for r in caplog.records)
    assert "1001_DFA_SAD_XX.flv" not in _keys(store)

    hap, neu = _ids(store)["1001_DFA_HAP_XX.flv"], _ids(store)["1001_DFA_NEU_XX.flv"]
    assert main(["forget", "--store", str(root), "--video-id", hap]) == 0
    assert not store.has_partition("descriptors", hap) and hap not in set(store.read_catalog("people")["video_id"])
    assert main(["forget", "--store", str(root), "--video-id", neu, "--person-id", "0"]) == 0
    assert not store.has_partition("descriptors", neu) and neu not in set(store.read_catalog("people")["video_id"])

    from tasks.predict.privacy import expire_crops

    assert len(store.video_ids("descriptors")) == 1  # the selfie's (the SAD clip's were removed above)
    expire_crops(store, 1, now=datetime.now(UTC) + timedelta(days=2))
    assert store.video_ids("descriptors") == []  # older than the retention: gone with the crops' retention


def test_linking_needs_the_recognition_weights(media_dir, tmp_path, monkeypatch, capsys):
    from models import faceapi_package

    _corpus(media_dir, tmp_path / "corpus", ["1001_DFA_NEU_XX.flv"])
    monkeypatch.setenv(faceapi_package.ENV_DIR, str(tmp_path / "no-weights"))
    assert _run(tmp_path / "corpus", tmp_path / "store", "--link-people") == 2
    err = capsys.readouterr().err
    assert "parameter link_people" in err and "face recognition weights not found" in err


def _unit(seed):
    v = np.random.default_rng(seed).normal(size=DESCRIPTOR_SIZE)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_two_persons_of_one_video_are_never_one_and_keys_come_from_the_earliest_video():
    a, b = _unit(1), _unit(2)
    near = lambda v, s: (v + 0.05 * _unit(s)).reshape(1, -1)  # noqa: E731
    persons = [("v1", 0), ("v1", 1), ("v2", 0), ("v2", 1), ("v3", 0)]
    descriptors = {
        ("v1", 0): near(a, 10),
        ("v1", 1): near(a, 11),  # as close to v1's person 0 as can be, and still another person of v1
        ("v2", 0): np.concatenate([near(a, 12), near(a, 13)]),
        ("v3", 0): near(b, 14),
    }  # v2's person 1 has no usable face: alone
    keys = link_course(persons, descriptors)
    assert keys[0] != keys[1] and keys[2] in (keys[0], keys[1]) and keys[2].startswith("v1:")
    assert keys[3] == "v2:1" and keys[4] == "v3:0"
    assert link_course([], {}) == []
