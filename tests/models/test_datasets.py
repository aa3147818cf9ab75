"""Dataset adapters (DAiSEE conversion, DFEW, manifest, bad rows), sampling, augmentation."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.datasets import (
    Clip,
    ClipAugment,
    DatasetError,
    daisee_state,
    daisee_targets,
    read_daisee,
    read_dfew,
    read_manifest,
    sample_indices,
)
from models.layout import BLAZEPOSE_FLIP, IBUG68_FLIP, KEYPOINT_NAMES

# Boredom, Engagement, Confusion, Frustration per clip, and the single label the rules give.
DAISEE_TABLE = {
    "Train": [
        ((0, 2, 1, 3), "frustration"), ((1, 1, 1, 1), "frustration"), ((2, 2, 0, 2), "frustration"),
        ((0, 2, 3, 1), "confusion"), ((2, 0, 2, 1), "confusion"),
        *[((3, 1, 0, 0), "boredom")] * 5, ((2, 2, 0, 0), "boredom"),
        *[((0, 3, 1, 1), "engagement")] * 12,
    ],
    "Validation": [
        ((0, 1, 0, 2), "frustration"), ((1, 1, 2, 2), "frustration"), ((1, 1, 3, 0), "confusion"),
        *[((3, 0, 0, 0), "boredom")] * 5, *[((0, 2, 1, 0), "engagement")] * 4,
    ],
    "Test": [
        ((0, 0, 0, 1), "frustration"), ((0, 0, 1, 0), "confusion"), *[((1, 0, 0, 0), "boredom")] * 2,
        *[((0, 1, 0, 0), "engagement")] * 4,
    ],
}  # fmt: skip
# Hand-counted from the table: F = frustration clips; engagement kept min(n, 3F), boredom min(n, round(4F/3)).
EXPECTED = {
    "train": {"boredom": 4, "engagement": 9, "confusion": 2, "frustration": 3},  # F=3: 9 of 12, round(4)=4 of 6
    "validation": {"boredom": 3, "engagement": 4, "confusion": 1, "frustration": 2},  # F=2: all 4, round(2.67)
    "test": {"boredom": 1, "engagement": 3, "confusion": 1, "frustration": 1},  # F=1: 3 of 4, round(1.33)
}


def write_daisee(root: Path, video: Path, table=DAISEE_TABLE, missing: str | None = None) -> Path:
    """DAiSEE layout with copies of ``video``; ``missing`` is a labelled clip without a file."""
    (root / "Labels").mkdir(parents=True)
    for folder, rows in table.items():
        lines = ["ClipID,Boredom,Engagement,Confusion,Frustration "]  # the official trailing space
        for k, (levels, _) in enumerate(rows):
            subject = f"{folder[0]}{k:05d}"
            clip = f"{subject}{k:04d}"
            target = root / "DataSet" / folder / subject / clip / f"{clip}.mp4"
            target.parent.mkdir(parents=True)
            shutil.copyfile(video, target)
            lines.append(f"{clip}.avi," + ",".join(map(str, levels)))
        if missing and folder == "Test":
            lines.append(f"{missing},0,3,0,0")
        (root / "Labels" / f"{folder}Labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_daisee_single_label_rule_matches_the_table():
    for rows in DAISEE_TABLE.values():
        for (b, e, c, f), label in rows:
            assert daisee_state({"boredom": b, "engagement": e, "confusion": c, "frustration": f}) == label


def test_undersampling_targets_reproduce_paper_2_table_1():
    before = {  # Table 1 "before processing": boredom, engagement, confusion, frustration
        "train": (849, 4163, 275, 194), "validation": (264, 1301, 90, 68), "test": (470, 1040, 106, 104),
    }  # fmt: skip
    after = {"train": (259, 582), "validation": (91, 204), "test": (139, 312)}  # boredom, engagement
    for split, counts in before.items():
        targets = daisee_targets(dict(zip(("boredom", "engagement", "confusion", "frustration"), counts, strict=True)))
        assert (targets["boredom"], targets["engagement"]) == after[split]


def test_daisee_conversion_gives_the_counts_the_rules_imply(tmp_path, face_clip):
    root = write_daisee(tmp_path / "DAiSEE", face_clip, missing="9999990001.avi")
    clips = read_daisee(root, seed=3)
    assert clips.task == "learner_state" and clips.classes == ("boredom", "engagement", "confusion", "frustration")
    for split, expected in EXPECTED.items():
        assert clips.counts(split) == expected
    assert clips.dropped == {"missing_clip": 1}
    again = read_daisee(root, seed=3)
    assert [c.clip_id for c in again.clips] == [c.clip_id for c in clips.clips]  # fixed seed, same subset
    levels = read_daisee(root, task="level", state="engagement")
    assert levels.task is None and levels.counts("train") == {"very_low": 1, "low": 6, "high": 4, "very_high": 12}


def test_daisee_bad_rows_name_file_and_row(tmp_path, face_clip):
    root = write_daisee(tmp_path / "DAiSEE", face_clip)
    labels = root / "Labels" / "ValidationLabels.csv"
    lines = labels.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",7"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"ValidationLabels.csv: row 4 .*Frustration level '7'"):
        read_daisee(root)
    labels.write_text("ClipID,Boredom,Engagement\n")
    with pytest.raises(DatasetError, match=r"ValidationLabels.csv: missing columns \['Confusion', 'Frustration'\]"):
        read_daisee(root)


def test_dfew_fold_labels_and_clip_folders(tmp_path):
    root = tmp_path / "DFEW"
    for name in ("00001", "00002", "00003"):
        (root / "Clip" / "clip_224x224" / name).mkdir(parents=True)
    for folder, rows in (("train(single-labeled)", "1,1\n2,7\n"), ("test(single-labeled)", "3,4\n")):
        (root / "EmoLabel_DataSplit" / folder).mkdir(parents=True)
        (root / "EmoLabel_DataSplit" / folder / "set_2.csv").write_text("video_name,label\n" + rows)
    clips = read_dfew(root, fold=2)
    names = {c.clip_id: (clips.classes[c.label], c.split) for c in clips.clips}
    assert names == {"1": ("happiness", "train"), "2": ("fear", "train"), "3": ("anger", "test")}
    (root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv").write_text("video_name,label\n3,0\n")
    with pytest.raises(DatasetError, match=r"set_2.csv: row 2 \(3\): label '0' is not a DFEW id 1..7"):
        read_dfew(root, fold=2)
    with pytest.raises(FileNotFoundError, match="set_1.csv"):
        read_dfew(root, fold=1)


def test_manifest_classes_and_bad_rows(tmp_path, face_clip):
    shutil.copyfile(face_clip, tmp_path / "a.mp4")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,split\na.mp4,confusion,train\na.mp4,boredom,test\n")
    clips = read_manifest(manifest)
    assert clips.task == "learner_state" and [clips.classes[c.label] for c in clips.clips] == ["confusion", "boredom"]
    manifest.write_text("path,label,split\na.mp4,sleepy,train\na.mp4,awake,test\n")
    assert read_manifest(manifest).classes == ("awake", "sleepy") and read_manifest(manifest).task is None
    manifest.write_text("path,label,split\na.mp4,sleepy,train\nb.mp4,awake,test\n")
    with pytest.raises(DatasetError, match=r"manifest.csv: row 3: .*b.mp4 does not exist"):
        read_manifest(manifest)
    manifest.write_text("path,label,split\na.mp4,sleepy,dev\n")
    with pytest.raises(DatasetError, match=r"manifest.csv: row 2: split 'dev'"):
        read_manifest(manifest)


def test_segment_sampling():
    assert sample_indices(16, 8, 1, None).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_indices(16, 4, 2, None).tolist() == [1, 2, 5, 6, 9, 10, 13, 14]
    assert sample_indices(3, 4, 1, None).tolist() == [0, 0, 1, 2]  # fewer frames than segments: repeats
    drawn = sample_indices(40, 8, 2, np.random.default_rng(0))
    assert all(5 * k <= i < 5 * (k + 1) for k in range(8) for i in drawn[2 * k : 2 * k + 2])


def test_flip_tables_swap_left_and_right():
    assert sorted(IBUG68_FLIP) == list(range(68)) and all(IBUG68_FLIP[IBUG68_FLIP[i]] == i for i in range(68))
    assert (IBUG68_FLIP[36], IBUG68_FLIP[48], IBUG68_FLIP[8], IBUG68_FLIP[30]) == (45, 54, 8, 30)
    for i, j in enumerate(BLAZEPOSE_FLIP):
        assert KEYPOINT_NAMES[j] == KEYPOINT_NAMES[i].replace("left", "#").replace("right", "left").replace(
            "#", "right"
        )


def test_augmentation_is_the_same_for_every_frame_and_moves_the_points(monkeypatch):
    import models.datasets as datasets

    augment = ClipAugment(gamma=1.3, brightness=0.8, contrast=1.2, saturation=0.7, scale=0.75, offset=4, flip=True)
    frames = torch.rand(1, 3, 8, 8).repeat(4, 1, 1, 1)
    out = augment.colour(frames)
    assert torch.equal(out[0], out[3]) and not torch.allclose(out[0], frames[0])
    assert augment.crop_box(112) == (28, 28, 84)

    # a blank 112 crop with one bright pixel at the image-left eye (landmark 36)
    image = np.zeros((2, 112, 112, 3), np.uint8)
    image[:, 40, 70] = 255
    points = np.zeros((2, 68, 2), np.float32)
    points[:, 36] = (70.5, 40.5)
    monkeypatch.setattr(datasets, "load_frames", lambda path, view, rows: (image[rows], points[rows]))
    clip = datasets.CachedClip(Clip("c", Path("."), 0, "train"), "", Path("."), 2)
    data = datasets.ClipDataset([clip], view="face", segments=2, per_segment=1, image_size=56, mean=(0, 0, 0),
                                std=(1, 1, 1), train=True)  # fmt: skip
    flipped = set()
    for epoch in range(8):
        data.epoch = epoch
        x, p, _, _ = data[0]
        assert torch.equal(x[0], x[1])  # one set of parameters for the clip
        row, col = divmod(int(x[0].sum(dim=0).argmax()), 56)
        # after a flip the eye is on the image right: landmark 45 carries it
        index = 45 if (p[0, 36] == 0).any() or p[0, 36, 0] > 56 else 36
        flipped.add(index)
        assert abs(p[0, index, 0] - (col + 0.5)) <= 1.0 and abs(p[0, index, 1] - (row + 0.5)) <= 1.0
    assert flipped == {36, 45}
