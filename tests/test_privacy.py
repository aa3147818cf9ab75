"""Personal data on generated stores: crops' retention, reports of erased videos, least data by default,
permissions, and reports / artifacts that never carry face pixels. (The end-to-end proof on the sample clips
is tests/test_privacy_pipeline.py.)"""

import base64
import logging
import os
import re
import shutil
import stat
import time

import numpy as np
import pyarrow as pa
import pytest

import flows.analyse
import tasks.analyse.analysis
from flows.cli import main
from models.rules import TASK_CLASSES
from tasks.analyse.report import plots
from tasks.extract.crops import encode_jpeg
from tasks.extract.video import ExtractParams
from tasks.predict.inference import current_version
from tasks.predict.privacy import crop_holdings, expire_crops, video_params
from tasks.store import CROP_SCHEMA, FRAME_SCHEMA, Store, prediction_schema, table_from_columns, write_table_atomic
from tests.test_analyse import outcomes_frame
from tests.test_marts import write_lesson_store

DAY = 86400.0


def crop_jpegs(seed: int, n: int = 3) -> list[bytes]:
    """Distinct JPEG images the size of a face crop (textured so that each one's bytes are unique)."""
    rng = np.random.default_rng(seed)
    return [encode_jpeg(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)) for _ in range(n)]


def write_crops(store: Store, video_id: str, jpegs: list[bytes]) -> None:
    n = len(jpegs)
    columns = {
        "frame": list(range(n)), "timestamp": [i / 5 for i in range(n)], "face_index": [0] * n,
        **{f"bbox_{k}": [10.0] * n for k in "xywh"}, "jpeg": jpegs,
    }  # fmt: skip
    table = table_from_columns(columns, CROP_SCHEMA).append_column("face_id", pa.array([0] * n, pa.int32()))
    write_table_atomic(table, store.partition("crops", video_id))


def write_video(store: Store, video_id: str, version: str | None = "current") -> None:
    """An (empty) frames partition, crops, and predictions of every task by ``version``: "current" = the
    version inference would use now, None = no predictions."""
    write_table_atomic(
        table_from_columns({f.name: [] for f in FRAME_SCHEMA}, FRAME_SCHEMA), store.partition("frames", video_id)
    )
    write_crops(store, video_id, crop_jpegs(sum(video_id.encode())))
    if version is None:
        return
    for task in TASK_CLASSES:
        used = current_version(store, task) if version == "current" else version
        empty = pa.table({f.name: pa.array([], f.type) for f in prediction_schema(task)})
        write_table_atomic(empty, store.prediction_path(task, used, video_id))


def age(store: Store, table: str, video_id: str, days: float) -> None:
    path = store.partition(table, video_id)
    when = time.time() - days * DAY
    os.utime(path, (when, when))


def test_retention_deletes_exactly_the_crops_past_the_limit_whose_predictions_are_current(tmp_path, capsys):
    store = Store(tmp_path / "store").ensure()
    write_video(store, "old_current")  # 40 days, current predictions: expires
    write_video(store, "old_other_version", version="v-older")  # predictions by another model: still needed
    write_video(store, "old_unpredicted", version=None)  # no predictions yet: still needed
    write_video(store, "young_current")  # 29 days: within the limit
    write_video(store, "old_stale")  # predictions older than a re-extraction of its frames: still needed
    for video_id in ("old_current", "old_other_version", "old_unpredicted", "old_stale"):
        age(store, "crops", video_id, 40)
    age(store, "crops", "young_current", 29)
    for task in TASK_CLASSES:
        path = store.prediction_path(task, current_version(store, task), "old_stale")
        os.utime(path, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    size_before = sum(info.st_size for info in store.crop_files().values())
    held = crop_holdings(store)
    assert held["videos"] == 5 and held["bytes"] == size_before and held["oldest_days"] == pytest.approx(40, abs=0.01)

    assert main(["status", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert f"5 videos, {size_before} bytes" in out and "oldest crop: 40.0 days" in out

    assert expire_crops(store, 30) == ["old_current"]
    assert sorted(store.video_ids("crops")) == ["old_other_version", "old_stale", "old_unpredicted", "young_current"]
    assert store.has_partition("frames", "old_current")  # only the crops go
    assert expire_crops(store, 30) == []  # nothing else is past the limit with current predictions
    with pytest.raises(ValueError, match="crops_retention_days"):
        expire_crops(store, -1)


def test_forgetting_a_video_removes_the_reports_that_may_show_it(tmp_path):
    store = Store(tmp_path / "store").ensure()
    write_video(store, "0123456789abcdef")
    write_video(store, "fedcba9876543210")
    reports = store.reports_dir()
    for name, ids in (("r1", ["0123456789abcdef", "fedcba9876543210"]), ("r2", ["fedcba9876543210"]), ("r3", None)):
        (reports / name).mkdir(parents=True)
        (reports / name / "report.html").write_text("<html></html>")
        if ids is not None:
            store.write_report_index(reports / name, ids)
    removed = store.forget_video("0123456789abcdef")
    assert removed["reports"] == 2  # r1 lists it, r3 has no index so it may show any video
    assert sorted(p.name for p in reports.iterdir()) == ["r2"]
    assert removed["crops"] == removed["frames"] == 1 and removed["predictions"] == len(TASK_CLASSES)
    assert store.erased_videos() == {"0123456789abcdef"}
    write_table_atomic(  # a partition left behind (say, restored from a backup) is still never predicted
        table_from_columns({f.name: [] for f in FRAME_SCHEMA}, FRAME_SCHEMA),
        store.partition("frames", "0123456789abcdef"),
    )
    assert store.stale_videos("emotion", "any-version") == ["fedcba9876543210"]
    shutil.rmtree(store.partition("frames", "0123456789abcdef").parent)
    assert store.forget_video("0123456789abcdef") == {**dict.fromkeys(removed, 0)}  # idempotent
    assert store.record_erasure("0123456789abcdef", "video", action="undo")
    assert store.erased_videos() == set()
    assert list(store.read_catalog("erasures")["action"]) == ["erase", "undo"]


@pytest.mark.parametrize(
    ("role", "opt_in", "kept"),
    [
        (None, False, True),
        ("teacher", False, True),
        ("Teacher", False, True),
        ("students", False, False),
        ("Students ", False, False),
        ("students", True, True),
    ],
)
def test_crops_are_kept_by_default_only_for_teacher_or_unset_roles(role, opt_in, kept):
    meta = {} if role is None else {"role": role}
    assert video_params(ExtractParams(), meta, keep_student_crops=opt_in).keep_crops is kept
    assert video_params(ExtractParams(keep_crops=False), meta, keep_student_crops=True).keep_crops is False


def modes(root) -> set[tuple[str, int]]:
    found = set()
    for folder, dirs, names in os.walk(root):
        found |= {("dir", stat.S_IMODE(os.stat(os.path.join(folder, d)).st_mode)) for d in dirs}
        found |= {("file", stat.S_IMODE(os.stat(os.path.join(folder, n)).st_mode)) for n in names}
    return found


def test_store_files_are_owner_only_unless_the_store_is_made_group_readable(tmp_path):
    old_umask = os.umask(0o022)  # a permissive umask: the store must not depend on it
    try:
        store = Store(tmp_path / "store").ensure()
        write_video(store, "0123456789abcdef")
        with store.writer_lock("test"):
            pass
        assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
        assert modes(store.root) == {("dir", 0o700), ("file", 0o600)}
        (store.root / "models").mkdir()  # written by someone else with the umask
        (store.root / "models" / "x.json").write_text("{}")
        Store(store.root).ensure(group_readable=True)
        assert modes(store.root) == {("dir", 0o750), ("file", 0o640)}
        write_video(store, "fedcba9876543210")  # new files follow the remembered policy
        Store(store.root).ensure()
        assert modes(store.root) == {("dir", 0o750), ("file", 0o640)}
        Store(store.root).ensure(group_readable=False)
        assert modes(store.root) == {("dir", 0o700), ("file", 0o600)}
    finally:
        os.umask(old_umask)


def test_the_report_and_its_artifacts_never_carry_face_pixels(tmp_path, monkeypatch):
    """The report builder gets numbers and names only; every embedded image is one of the plots made from
    them; no byte string of a stored face crop reaches a report file or a Prefect artifact."""
    store = write_lesson_store(tmp_path / "store")
    jpegs = {}
    for video_id in store.video_ids("frames"):
        jpegs[video_id] = crop_jpegs(len(jpegs))
        write_crops(store, video_id, jpegs[video_id])
    outcomes = tmp_path / "outcomes.csv"
    outcomes_frame().to_csv(outcomes, index=False)
    seen = []

    def spy(folder, inputs, real=tasks.analyse.analysis.write_report):
        seen.append(inputs)
        return real(folder, inputs)

    monkeypatch.setattr(tasks.analyse.analysis, "write_report", spy)
    artifacts = []
    monkeypatch.setattr(flows.analyse, "create_table_artifact", lambda **kw: artifacts.append(kw))
    monkeypatch.setattr(flows.analyse, "create_markdown_artifact", lambda **kw: artifacts.append(kw))
    monkeypatch.setattr(flows.analyse, "get_run_logger", lambda: logging.getLogger("test"))
    report = flows.analyse.analyse.fn(str(store.root), str(outcomes))
    (inputs,) = seen
    frames = [inputs.units, inputs.windows, inputs.au_means]
    for frame in frames:
        assert not any(isinstance(v, bytes | bytearray | memoryview) for v in frame.to_numpy().ravel())
        assert "jpeg" not in frame.columns
    assert all(isinstance(v, str) for v in inputs.facts.values())
    html = open(report).read()
    embedded = re.findall(r'src="data:([^;]+);base64,([^"]+)"', html)
    assert embedded and {kind for kind, _ in embedded} == {"image/png"}
    made = set(plots(inputs).values())
    assert {base64.b64decode(data) for _, data in embedded} <= made
    folder = os.path.dirname(report)
    assert sorted(os.listdir(folder)) == sorted(
        ["report.html", "report.md", "ancova.csv", "adjusted_means.csv", "units.csv", "analysis.json",
         "video_ids.json", "read.csv", "design.json", *plots(inputs)]
    )  # fmt: skip
    everything = b"".join(open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder))
    everything += repr(artifacts).encode()
    for crop in (c for crops in jpegs.values() for c in crops):
        assert crop[200:264] not in everything and base64.b64encode(crop[:240])[40:120] not in everything
    assert b"data:image" not in repr(artifacts).encode()


def test_forgetting_an_id_the_store_does_not_hold_says_so(tmp_path, capsys):
    store = Store(tmp_path / "store").ensure()
    write_video(store, "fedcba9876543210")
    assert main(["forget", "--store", str(store.root), "--video-id", "0123456789abcdef"]) == 0
    assert "the store has no such video: check the id" in capsys.readouterr().out
    assert main(["forget", "--store", str(store.root), "--video-id", "fedcba9876543210"]) == 0
    assert "no such video" not in capsys.readouterr().out
