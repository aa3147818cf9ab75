"""Reprocess benchmark: recomputing predictions after a model promotion vs a full nightly run.

One run, same machine, same corpus: the demo clips plus ``--videos`` (default 4) lessons made of the real
clip ``pyfeat_WolfgangLanger_Pexels.mp4`` played forwards and backwards for ``--seconds`` (default 150 s)
each, so that per-frame work outweighs the fixed cost of starting a flow and a Dask cluster:

1. ``full``: ``lessonlens run`` on an empty store (decode, faces, landmarks, AUs, body, crops, rule-baseline
   predictions), wall time end to end;
2. a small AGDTNet (learner_state) is registered and promoted in that store;
3. ``reprocess``: the ``reprocess`` flow for learner_state (inference only, from the stored crops), wall
   time end to end on the same local Prefect API and 2 Dask workers.

The target is reprocess >= 10x faster than the full run. ``--model small`` promotes a narrow AGDTNet
(8 frames of 64 px); ``--model paper`` the paper's size (16 frames of 112 px, 19.2M parameters), whose CPU
inference costs about as much per frame as extraction itself.

    python bench/reprocess.py [--model small|paper] [--videos 4] [--seconds 150]
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from extract import ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py

from flows.cli import main as cli
from models import build_model
from models.registry import promote, register
from models.rules import TASK_CLASSES
from tasks.synthetic.media import make_demo_corpus

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
MODELS = {
    "small": dict(num_frames=8, image_size=64, widths=(32, 64, 128, 256), heads=4, mlp_dim=256, depth=1),
    "paper": {},
}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    size = MODELS[args.model]
    from flows.engine import prefect_api
    from flows.reprocess import reprocess

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        make_demo_corpus(corpus)
        for i in range(args.videos):  # different lengths: different contents, hence different videos
            ping_pong(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4", corpus / f"lesson_{i}.mp4", args.seconds + i)
        store = root / "store"
        with prefect_api():
            start = time.perf_counter()
            assert cli(["run", str(corpus), "--store", str(store), "--workers", "2"]) == 0
            full = time.perf_counter() - start
            torch.manual_seed(0)
            model = build_model("learner_state", "paper", num_classes=4, **size)
            classes = list(TASK_CLASSES["learner_state"])
            version = register(store, "learner_state", model, variant="paper", metrics={}, data_fingerprint="bench",
                               task="learner_state", classes=classes)  # fmt: skip
            promote(store, "learner_state", version)
            start = time.perf_counter()
            summary = reprocess(str(store), "learner_state", workers=2)
            again = time.perf_counter() - start
        result = {
            "corpus": f"{len(list(corpus.glob('*.mp4')))} videos",
            "full_run_s": round(full, 1),
            "reprocess_s": round(again, 1),
            "speedup": round(full / again, 1),
            "reprocessed": summary,
            "model": f"learner_state {version} {size or 'paper size'}",
        }
        print(json.dumps(result, indent=2, default=str))
        minutes = sum(args.seconds + i for i in range(args.videos)) / 60
        row = {"corpus": f"{result['corpus']} (demo clips + {args.videos} lessons, {minutes:.1f} min of lessons)",
               "full_run_s": result["full_run_s"], "reprocess_s": result["reprocess_s"],
               "speedup": result["speedup"]}  # fmt: skip
        conditions = {
            "model": f"learner_state AGDTNet, {args.model} size",
            "workers": 2,
            "fps": 5,
            "crops": True,
            "body_fps": 1,
            "video": "pyfeat_WolfgangLanger_Pexels.mp4 ping-pong, 640x360",
        }
        write_result(args.json, "reprocess", "Reprocess after retraining vs a full run", command_line(__file__, argv),
                     conditions, [row], {"speedup": result["speedup"]})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
