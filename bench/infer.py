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
from results import command_line, write_result  # bench/results.py

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
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    rows = []
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
        rows.append(row)
        print(json.dumps(row), flush=True)
    conditions = {
        "precision": "float32" if args.device == "cpu" else "bf16 autocast",
        "device": args.device,
        "model size": "paper (default config)",
        "statistic": f"median of {args.runs} calls after a warm-up",
    }
    headline = {f"{r['model']} clips/s (batch 1)": r["clips_per_s_batch1"] for r in rows}
    write_result(args.json, "infer", "Model inference throughput", command_line(__file__, argv), conditions, rows,
                 headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
