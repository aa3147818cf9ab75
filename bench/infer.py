"""Inference throughput: clips per second of each model at its default (paper) size, on this machine.

Batch 1 and batch ``--batch`` (default 4), torch.inference_mode, float32, on CPU (or ``--device cuda``
with bf16 autocast, the pipeline's GPU setting), median of ``--runs`` timed calls after one warm-up.

    python bench/infer.py [--batch 4] [--runs 3] [--device cpu|cuda]
"""

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch

from models import available_models, build_model
from models.info import example_inputs


def clips_per_s(model, inputs, runs: int, device: str) -> float:
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        model(*inputs)
        for _ in range(runs):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*inputs)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return inputs[0].shape[0] / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    for name in available_models():
        model = build_model(name).eval().to(args.device)
        one = tuple(t.to(args.device) for t in example_inputs(name, model.config))
        many = tuple(t.expand(args.batch, *t.shape[1:]).contiguous() for t in one)
        row = {
            "model": name,
            "input": "x".join(map(str, one[0].shape[1:])),
            "device": args.device,
            "threads": torch.get_num_threads(),
            "clips_per_s_batch1": round(clips_per_s(model, one, args.runs, args.device), 2),
            f"clips_per_s_batch{args.batch}": round(clips_per_s(model, many, args.runs, args.device), 2),
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
