"""What a person sees on the console: no native library noise from the workers, one progress bar in a terminal."""

import io
import os
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from flows.engine import console_progress, report_progress


@pytest.mark.slow
def test_a_run_prints_no_native_library_noise(tmp_path, media_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(media_dir / "pyfeat_single_face.mp4", corpus / "face.mp4")
    (corpus / "notes.mp4").write_text("not a video\n" * 20)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(corpus), "--store", str(tmp_path / "store"), "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # notes.mp4 failed, and the run says so
    for noise in ("XNNPACK", "inference_feedback_manager", "absl::InitializeLog", "moov atom", "video_reader.cc"):
        assert noise not in output, noise
    assert "1 failed" in done.stdout


def test_in_a_terminal_progress_is_one_bar_and_log_lines_are_held_back():
    import logging

    from prefect.logging.configuration import setup_logging

    setup_logging()
    handler = next(h for h in logging.getLogger().handlers if type(h).__name__ == "PrefectConsoleHandler")
    level = handler.level
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with console_progress(True, console=console):
        assert handler.level == logging.WARNING
        report_progress(0, 3, 0)
        report_progress(3, 3, 120)
    assert handler.level == level
    text = screen.getvalue()
    assert "3/3" in text and "120 frames" in text
    quiet = io.StringIO()
    with console_progress(False, console=Console(file=quiet, force_terminal=True)):
        report_progress(1, 3, 10)
    assert quiet.getvalue() == "" and handler.level == level
