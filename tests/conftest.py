import os
import tempfile
from pathlib import Path

import pytest

# Prefect state of the test session lives in a throw-away home, never in the user's ~/.prefect
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="lessonlens-prefect-")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="requires_cuda: no CUDA GPU on this machine")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The real sample clips in ../shared/media (see its SOURCES.md). A test that needs them fails when they
    are missing (CI has them): it never passes by skipping."""
    if not MEDIA.is_dir():
        pytest.fail(f"sample media folder {MEDIA} not present: tests need ../shared/media beside the checkout")
    return MEDIA


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """One second of the animated astronaut photo, 8 fps."""
    from tasks.synthetic.media import animate, face_photos, write_video

    path = tmp_path_factory.mktemp("face") / "face.mp4"
    return write_video(path, animate(face_photos()["astronaut"], 1.0, 8.0, size=(320, 180)), 8.0)


@pytest.fixture(scope="session")
def prefect_api():
    """One real local Prefect API (temporary server) for the session; Dask workers inherit its URL."""
    from flows.engine import prefect_api as start

    with start() as url:
        yield url
