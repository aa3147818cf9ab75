"""``lessonlens evaluate --manifest`` / ``--au-reference``: metrics, ICC, manifests, and real pipeline runs.

The slow tests run the real ``nightly-corpus`` flow (Prefect API, Dask LocalCluster, decord, MediaPipe) on
the CREMA-D sample clips and on face photos shipped in pip packages.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from flows.cli import main
from flows.evaluate import evaluate_manifest
from models import build_model, faceapi_package
from models.registry import register
from models.rules import MODEL_NAME, TASK_CLASSES
from tasks.analyse import au_agreement as aus
from tasks.analyse import evaluate as ev

SMALL_EXPRESSION = dict(num_frames=4, image_size=64, layers=(1, 1, 1, 1), base_width=4, roi_hidden=8,
                        roi_channels=8, part_channels=8, lstm_channels=8, se_reduction=4)  # fmt: skip


# metrics ---------------------------------------------------------------------------------------------------
def test_icc_pearson_and_mad_on_a_hand_computed_example():
    # targets × raters [[1, 2], [2, 4], [3, 3]]: grand mean 2.5, row means 1.5, 3, 3, column means 2, 3
    # SS_R = 2 (1 + .25 + .25) = 3, SS_C = 3 (.25 + .25) = 1.5, SS_T = 5.5, SS_E = 1
    # MS_R = 3 / 2 = 1.5, MS_E = 1 / (2 · 1) = 0.5, ICC(3,1) = (1.5 - 0.5) / (1.5 + 0.5) = 0.5
    # r: cov = 1, var x = 2, var y = 2 → 0.5; mean |x - y| = (1 + 2 + 0) / 3 = 1
    assert aus.icc_3_1(np.array([[1, 2], [2, 4], [3, 3]])) == pytest.approx(0.5)
    assert aus.pearson_r([1, 2, 3], [2, 4, 3]) == pytest.approx(0.5)
    ours = pd.DataFrame({"timestamp": [0.0, 0.2, 0.4], "AU12_r": [1.0, 2.0, 3.0]})
    reference = pd.DataFrame({"timestamp": [0.41, 0.0, 0.19], "AU12_r": [3.0, 2.0, 4.0]})  # unsorted on purpose
    (row,) = aus.au_agreement(ours, reference, tolerance=0.1).to_dict("records")
    assert (row["n"], row["icc_3_1"], row["pearson_r"], row["mean_abs_diff"]) == (3, 0.5, 0.5, 1.0)


def test_icc_matches_shrout_and_fleiss_published_example():
    # Shrout & Fleiss (1979), Table 2: 6 targets × 4 judges; Table 4 gives ICC(3,1) = .71
    ratings = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    assert round(aus.icc_3_1(ratings), 2) == 0.71


def test_icc_is_consistency_an_offset_keeps_it_a_scale_lowers_it():
    x = np.random.default_rng(0).uniform(0, 3, 50)
    assert aus.icc_3_1(np.stack([x, x + 0.7], axis=1)) == pytest.approx(1.0)
    assert aus.pearson_r(x, 2 * x) == pytest.approx(1.0)
    assert aus.icc_3_1(np.stack([x, 2 * x], axis=1)) < 0.9
    assert math.isnan(aus.icc_3_1(np.ones((5, 2)))) and math.isnan(aus.pearson_r([1, 1, 1], [1, 2, 3]))


def test_alignment_takes_the_nearest_reference_within_tolerance():
    ours_i, ref_i = aus.align_nearest(np.array([0.0, 0.2, 0.4, 5.0]), np.array([0.01, 0.15, 0.26, 0.42]), 0.1)
    assert ours_i.tolist() == [0, 1, 2] and ref_i.tolist() == [0, 1, 3]  # 0.2 → 0.15 (nearer than 0.26)


def test_label_metrics_count_misses_as_wrong_and_uar_is_the_mean_recall_of_present_classes():
    truth = ["anger", "anger", "happiness", "neutral", "neutral"]
    predicted = ["anger", "neutral", "happiness", ev.MISS, "neutral"]
    m = ev.label_metrics(truth, predicted)
    assert m["recall"]["anger"] == 0.5 and m["recall"]["happiness"] == 1.0 and m["recall"]["neutral"] == 0.5
    assert m["recall"]["fear"] is None and ev.MISS not in m["recall"]
    assert m["uar"] == pytest.approx((0.5 + 1.0 + 0.5) / 3) and m["war"] == pytest.approx(3 / 5)
    assert m["classes"][-1] == ev.MISS and np.array(m["confusion"]).sum() == 5
    assert m["confusion"][m["classes"].index("neutral")][-1] == 1  # the miss is in the "(no prediction)" column
    assert ev.MISS not in ev.label_metrics(["anger"], ["anger"])["classes"]


# manifests ---------------------------------------------------------------------------------------------------
@pytest.fixture
def clip_dir(tmp_path):
    (tmp_path / "a.flv").write_bytes(b"FLV: not decoded until the corpus is built")
    (tmp_path / "face.png").write_bytes(b"\x89PNG: not decoded until the corpus is built")
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "row", "column", "text"),
    [
        ("path,label\na.flv,happiness\na.flv,joy\n", 3, "label", "'joy'"),
        ("path,label\nmissing.mp4,anger\n", 2, "path", "missing.mp4"),
        ("path,label,start,end\na.flv,anger,soon,\n", 2, "start", "'soon'"),
        ("path,label,start,end\na.flv,anger,1.5,1.0\n", 2, "end", "not after start"),
        ("path,label,start,end\na.flv,anger,-1,\n", 2, "start", ">= 0"),
        ("path,label,start\nface.png,anger,0.5\n", 2, "start", "image"),
        ("path,label\nnotes.txt,anger\n", 2, "path", "is neither a video"),
        ("path,lable\na.flv,anger\n", 1, "(header)", "missing column"),
    ],
)
def test_bad_manifests_name_file_row_and_column(clip_dir, rows, row, column, text):
    manifest = clip_dir / "labels.csv"
    manifest.write_text(rows)
    with pytest.raises((ValueError, FileNotFoundError)) as raised:
        ev.read_label_manifest(manifest)
    message = str(raised.value)
    assert str(manifest) in message and f"row {row}" in message and column in message and text in message


def test_manifest_rows_resolve_paths_and_labels(clip_dir):
    (clip_dir / "labels.csv").write_text("path,label,start,end\n\na.flv,Happiness,0.5,\nface.png,fear,,\n")
    items = ev.read_label_manifest(clip_dir / "labels.csv")
    assert [(i.row, i.source.name, i.label, i.start, i.end, i.is_image) for i in items] == [
        (3, "a.flv", "happiness", 0.5, None, False),
        (4, "face.png", "fear", None, None, True),
    ]


def test_cli_exits_2_naming_the_bad_row(clip_dir, capsys):
    (clip_dir / "labels.csv").write_text("path,label\na.flv,joy\n")
    assert main(["evaluate", "--manifest", str(clip_dir / "labels.csv"), "--out", str(clip_dir / "out")]) == 2
    err = capsys.readouterr().err
    assert "row 2 column label" in err and "labels.csv" in err
    assert main(["evaluate", "--au-reference", str(clip_dir / "x.csv")]) == 2
    assert "--video" in capsys.readouterr().err
    assert main(["evaluate", "--store", str(clip_dir)]) == 2  # neither form complete
    assert "--manifest" in capsys.readouterr().err


def test_segments_are_cut_from_decoded_frames_and_checked_against_the_video(media_dir, tmp_path):
    import decord

    item = ev.LabelledItem(2, media_dir / "cremad" / "1001_DFA_HAP_XX.flv", "happiness", 0.5, 1.5)
    clips, problems = ev.build_corpus([item], tmp_path / "corpus", "labels.csv")
    ((_, clip),) = clips.items()
    assert problems == {}
    reader = decord.VideoReader(str(clip))
    assert len(reader) in (29, 30, 31)  # 1 s of 29.97 fps
    with pytest.raises(ValueError, match=r"labels.csv: row 2 column end: 9.0 s is past the end"):
        ev.cut_segment(item.source, tmp_path / "x.mp4", 0.0, 9.0, "labels.csv: row 2")


def test_a_rerun_into_the_same_folder_never_uses_a_clip_made_from_another_file(tmp_path):
    """Two photos with one file name in two folders, put on the same manifest row one after the other (a
    manifest edited between two runs into the same --out)."""
    import cv2
    import decord

    for folder, bgr in (("red", (0, 0, 255)), ("blue", (255, 0, 0))):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "0001.png"), np.full((120, 160, 3), bgr, np.uint8))
    red, blue = (ev.LabelledItem(2, (tmp_path / f / "0001.png").resolve(), "happiness") for f in ("red", "blue"))
    corpus = tmp_path / "out" / "clips"
    corpus.mkdir(parents=True)
    (corpus / "row00009_of_an_older_manifest.mp4").write_bytes(b"old")

    def centre(clip):  # RGB at the frame's centre
        return decord.VideoReader(str(clip))[0].asnumpy()[180, 320].astype(int)

    first, _ = ev.build_corpus([red], corpus, "a.csv")
    assert sorted(corpus.iterdir()) == [first[2]]  # only this manifest's clips are left for the pipeline
    second, _ = ev.build_corpus([blue], corpus, "b.csv")
    assert sorted(corpus.iterdir()) == [second[2]]
    r, _, b = centre(second[2])
    assert b > 150 and r < 60, (r, b)  # the blue photo's clip, not the red one's
    made = second[2].stat().st_mtime_ns
    again, _ = ev.build_corpus([blue], corpus, "b.csv")
    assert again == second and second[2].stat().st_mtime_ns == made  # unchanged source: the clip is reused


def test_a_row_without_a_clip_is_named_and_the_other_rows_are_made(media_dir, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    items = [
        ev.LabelledItem(2, (tmp_path / "broken.png").resolve(), "sadness"),
        ev.LabelledItem(3, media_dir / "cremad" / "1001_DFA_HAP_XX.flv", "happiness", 5.0, None),
        ev.LabelledItem(4, media_dir / "cremad" / "1001_DFA_HAP_XX.flv", "happiness", 0.5, 1.0),
    ]
    clips, problems = ev.build_corpus(items, tmp_path / "corpus", "labels.csv")
    assert list(clips) == [4] and sorted(problems) == [2, 3]
    assert problems[2].startswith("labels.csv: row 2 column path:") and "not a readable image" in problems[2]
    assert problems[3].startswith("labels.csv: row 3 column start: 5.0 s is past the end")
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == [clips[4].name]  # no half-written files


# predictor selection ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A store with a small emotion model (teacher_expression v0001) and a learner_state model (v0001)."""
    import torch

    root = tmp_path_factory.mktemp("registry")
    torch.manual_seed(0)
    model = build_model("teacher_expression", "paper", **SMALL_EXPRESSION)
    register(root, "teacher_expression", model, variant="paper", metrics={}, data_fingerprint="test",
             task="emotion", classes=list(TASK_CLASSES["emotion"]))  # fmt: skip
    from tests.tiny import TINY_AGDTNET

    learner = build_model("learner_state", "paper", **TINY_AGDTNET, num_classes=4)
    register(root, "learner_state", learner, variant="paper", metrics={}, data_fingerprint="test",
             task="learner_state", classes=list(TASK_CLASSES["learner_state"]))  # fmt: skip
    return root


def test_model_specs_resolve_to_registry_records_or_the_rules(registry, tmp_path):
    assert ev.resolve_model(None, None) is None and ev.resolve_model(registry, "rules") is None
    assert ev.resolve_model(registry, None) is None  # nothing promoted: the pipeline would use the rules
    assert ev.resolve_model(tmp_path / "new-store", None) is None
    assert ev.resolve_model(registry, "v0001")["name"] == "teacher_expression"  # the only emotion v0001
    assert ev.resolve_model(registry, "teacher_expression:v0001")["version"] == "v0001"
    for spec, text in [("learner_state:v0001", "predicts task 'learner_state'"), ("v0009", "teacher_expression:v0001"),
                       ("promoted", "no emotion model is promoted")]:  # fmt: skip
        with pytest.raises(ValueError, match=text):
            ev.resolve_model(registry, spec)
    with pytest.raises(ValueError, match="--registry"):
        ev.resolve_model(None, "v0001")


def test_a_store_with_another_predictor_is_refused_not_changed(registry, tmp_path):
    record = ev.resolve_model(registry, "v0001")
    ev.prepare_store(tmp_path / "eval", registry, record)
    assert ev.resolve_model(tmp_path / "eval", "promoted")["version"] == "v0001"
    with pytest.raises(ValueError, match="would change it"):
        ev.prepare_store(tmp_path / "eval", registry, None)
    with pytest.raises(ValueError, match="is the registry"):
        ev.prepare_store(registry, registry, record)
    assert ev.resolve_model(registry, None) is None  # the registry itself was not promoted


# OpenFace CSV ----------------------------------------------------------------------------------------------
def test_openface_csv_columns_are_stripped_failed_rows_dropped_frames_timed(tmp_path):
    path = tmp_path / "of.csv"
    path.write_text("frame, face_id, timestamp, success, AU12_r, AU12_c\n1, 0, 0.0, 1, 1.5, 1\n2, 0, 0.033, 0, 9, 1\n")
    table = aus.read_openface(path)
    assert list(table.columns) == ["timestamp", "AU12_r"] and table["AU12_r"].tolist() == [1.5]
    path.write_text("frame, AU04_r\n1, 0.5\n31, 1.0\n")
    assert aus.read_openface(path, video_fps=30.0)["timestamp"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="frame rate"):
        aus.read_openface(path)
    path.write_text("frame, AU04_r\n1, high\n")
    with pytest.raises(ValueError, match="column AU04_r"):
        aus.read_openface(path, video_fps=30.0)
    path.write_text("frame, timestamp, success, AU12_r\n1, 0.0, 0, 1.5\n")
    with pytest.raises(ValueError, match=r"of.csv: no rows with success 1"):
        aus.read_openface(path)
    for text in ("", "frame, AU12_r\n1, 0.5\n2, 0.5, 7\n"):  # empty; a ragged row
        path.write_text(text)
        with pytest.raises(ValueError, match=r"of.csv: not an OpenFace CSV"):
            aus.read_openface(path, video_fps=30.0)


def test_au_agreement_without_a_single_matched_sample_is_an_error():
    ours = pd.DataFrame({"timestamp": [0.0, 0.2, 0.4], "AU12_r": [0.0, 1.0, 2.0]})
    later = ours.assign(timestamp=ours["timestamp"] + 10.0)  # another video, or times in frames
    with pytest.raises(ValueError, match=r"no reference row within 0.1 s of any of our 3 samples"):
        aus.au_agreement(ours, later, tolerance=0.1)


def test_a_manifest_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "a.flv").write_bytes(b"x")
    (tmp_path / "labels.csv").write_bytes("path,label\nä.flv,happiness\n".encode("cp1252"))
    with pytest.raises(ValueError, match=r"labels.csv: not UTF-8 text"):
        ev.read_label_manifest(tmp_path / "labels.csv")


# the real pipeline -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cremad(tmp_path_factory, media_dir, prefect_api):
    store = tmp_path_factory.mktemp("cremad-store")
    out = tmp_path_factory.mktemp("cremad-out")
    result = evaluate_manifest(media_dir / "cremad" / "labels.csv", out, store=store, workers=2)
    return result, out, store


@pytest.mark.slow
def test_cremad_clips_are_scored_with_a_face_in_every_clip(cremad, media_dir):
    result, out, _ = cremad
    assert (result["model"], result["model_version"]) == (faceapi_package.MODEL_NAME, faceapi_package.MODEL_VERSION)
    assert result["task"] == "emotion" and set(result["streams"]) == {"emotion", "emotion_rules"}
    rules = result["streams"]["emotion_rules"]
    assert rules["model"] == MODEL_NAME and rules["model_version"].startswith("rules-") and rules["clips"] == 6
    assert result["streams"]["emotion"]["clip_uar"] == result["clip"]["uar"]
    for stream in ("emotion", "emotion_rules"):
        saved = json.loads((out / "streams" / stream / "evaluation.json").read_text())
        assert saved["task"] == stream and saved["clip"]["uar"] == result["streams"][stream]["clip_uar"]
    clip = result["clip"]
    assert clip["n"] == 6 and np.array(clip["confusion"]).sum() == 6 and ev.MISS not in clip["classes"]
    present = [r for r in clip["recall"].values() if r is not None]
    assert len(present) == 6 and clip["uar"] == pytest.approx(np.mean(present))
    assert clip["war"] == pytest.approx(np.trace(np.array(clip["confusion"])) / 6)
    assert result["misses"] == [] and all(f["face_tracks"] >= 1 and f["windows"] >= 1 for f in result["faces"].values())
    clips = pd.read_csv(out / "clips.csv")
    probs = clips[[f"p_{c}" for c in ev.CLASSES]].to_numpy()
    assert (clips["predicted"] == np.array(ev.CLASSES)[probs.argmax(axis=1)]).all()  # argmax of the mean
    windows = pd.read_csv(out / "windows.csv")
    assert result["window"]["n"] == len(windows) == np.array(result["window"]["confusion"]).sum() >= 6
    for name in ("evaluation.json", "report.html", "clip/confusion.csv", "clip/confusion.png", "window/metrics.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "evaluation.json").read_text())["clip"]["uar"] == clip["uar"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "1001_DFA_HAP_XX.flv" in html


@pytest.mark.slow
def test_au_agreement_with_an_offset_copy_of_our_own_extraction(cremad, media_dir, tmp_path, capsys):
    _, _, store = cremad
    video = media_dir / "cremad" / "1001_DFA_HAP_XX.flv"
    ours = aus.primary_face_aus(store, ev.content_id(video))
    varying = [c for c in ours.columns if c.startswith("AU") and ours[c].std() > 1e-3]
    assert len(varying) >= 3
    reference = pd.DataFrame({" frame": np.arange(1, len(ours) + 1), " timestamp": ours["timestamp"] + 0.01})
    for au in varying:
        reference[f" {au}"] = ours[au] + 0.5  # OpenFace-style names with a leading space
    reference.loc[len(reference)] = [999, 100.0, *[0.0] * len(varying)]  # far from every sample: never matched
    reference.to_csv(tmp_path / "openface.csv", index=False)
    out = tmp_path / "au"
    (out / "clips").mkdir(parents=True)
    (out / "clips" / "video.mp4").symlink_to(media_dir / "pyfeat_no_face.mp4")  # an earlier evaluation's link
    code = main(["evaluate", "--au-reference", str(tmp_path / "openface.csv"), "--video", str(video),
                 "--store", str(store), "--out", str(out)])  # fmt: skip
    assert code == 0
    assert [p.name for p in (out / "clips").iterdir()] == ["video.flv"]  # only this video was analysed
    extracted = set(ev.Store(store).read_catalog("videos")["video_id"])
    assert ev.content_id(media_dir / "pyfeat_no_face.mp4") not in extracted
    assert "icc_3_1" in capsys.readouterr().out
    table = pd.read_csv(out / "au_agreement.csv").set_index("au")
    assert sorted(table.index) == sorted(varying) and (table["n"] == len(ours)).all()
    np.testing.assert_allclose(table["pearson_r"], 1.0, atol=1e-5)
    np.testing.assert_allclose(table["icc_3_1"], 1.0, atol=1e-5)  # consistency: the offset does not count
    np.testing.assert_allclose(table["mean_abs_diff"], 0.5, atol=1e-5)
    assert json.loads((out / "au_agreement.json").read_text())["tolerance_s"] == pytest.approx(0.1)
    noisy = pd.DataFrame({"timestamp": ours["timestamp"]})
    noise = np.random.default_rng(1).normal(0, 0.5, (len(ours), len(varying)))
    for k, au in enumerate(varying):
        noisy[au] = ours[au] + noise[:, k]
    noisy_table = aus.au_agreement(ours, noisy, 0.1)
    assert (noisy_table["icc_3_1"] < 0.999).all() and (noisy_table["pearson_r"] < 0.999).all()


@pytest.mark.slow
def test_images_and_segments_through_a_registered_model_from_the_cli(
    registry, media_dir, tmp_path, prefect_api, capsys
):
    import cv2

    from tasks.synthetic.media import face_photos

    photos = face_photos()
    rows = ["path,label,start,end"]
    for name, photo in photos.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        rows.append(f"{name}.png,happiness,,")
    rows.append(f"{media_dir / 'cremad' / '1001_DFA_ANG_XX.flv'},anger,0.4,1.6")
    png = (tmp_path / "hanks.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(png[: len(png) // 3])  # a copy cut short: no clip, the rest goes on
    rows += ["broken.png,sadness,,", f"{media_dir / 'cremad' / '1001_DFA_ANG_XX.flv'},anger,5,"]  # past the end
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = main(["evaluate", "--manifest", str(tmp_path / "labels.csv"), "--model", "teacher_expression:v0001",
                 "--registry", str(registry), "--out", str(out), "--workers", "2", "--fps", "5"])  # fmt: skip
    assert code == 0
    assert "teacher_expression v0001" in capsys.readouterr().out
    result = json.loads((out / "evaluation.json").read_text())
    assert result["model_version"] == "teacher_expression-v0001" and result["clip"]["n"] == len(photos) + 3
    clips = pd.read_csv(out / "clips.csv")
    made = clips[clips["miss_reason"].isna()]
    assert len(made) == len(photos) + 1 and (made["face_tracks"] >= 1).all()
    segment = made[made["label"] == "anger"].iloc[0]
    assert 5 <= segment["sampled_frames"] <= 7  # 1.2 s at 5 fps
    image_rows = made[made["label"] == "happiness"]
    assert (image_rows["sampled_frames"] == 11).all()  # a 2-s clip at 5 fps: the grid, then the last frame
    reasons = dict(zip(clips["row"], clips["miss_reason"], strict=True))
    broken, past = len(photos) + 3, len(photos) + 4  # their rows in the CSV
    assert "labels.csv: row" in reasons[broken] and "column path" in reasons[broken]
    assert "not a readable image" in reasons[broken]
    assert f"row {past} column start: 5.0 s is past the end" in reasons[past]
    assert np.array(result["clip"]["confusion"]).sum() == len(photos) + 3


def test_a_rerun_without_windows_does_not_show_the_earlier_window_matrix(tmp_path):
    clips = pd.DataFrame({"row": [2], "path": ["a.mp4"], "label": ["anger"], "predicted": ["anger"],
                          "face_tracks": [1], "frames_with_face": [5], "sampled_frames": [5], "windows": [1],
                          "miss_reason": [None]})  # fmt: skip
    windows = pd.DataFrame({"row": [2], "label": ["anger"], "predicted": ["anger"]})
    ev.write_evaluation(tmp_path, ev.score(clips, windows), clips, windows, {})
    assert "Confusion matrix, window level" in (tmp_path / "report.html").read_text()
    missed = clips.assign(predicted=ev.MISS, face_tracks=0, windows=0, miss_reason="no face found")
    ev.write_evaluation(tmp_path, ev.score(missed, windows.iloc[:0]), missed, windows.iloc[:0], {})
    assert not (tmp_path / "window").exists()
    assert "window level" not in (tmp_path / "report.html").read_text()
