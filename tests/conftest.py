import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

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
    """The real sample clips in ../shared/media (see its SOURCES.md); tests skip when it is absent."""
    if not MEDIA.is_dir():
        pytest.skip(f"sample media folder {MEDIA} not present")
    return MEDIA
