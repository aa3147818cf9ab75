"""`make bench`: every benchmark of this folder, one after the other, each output kept under bench/out/.

    python bench/run.py [--quick]

``--quick`` runs each benchmark at a small size (a smoke run that still measures); without it, the sizes
that bench/RESULTS.md reports. Each benchmark prints its own conditions and ratios; this script keeps
each one's output in ``bench/out/<name>.txt`` and a ``bench/out/summary.json`` of exit codes and times.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parents[1] / "shared" / "media"
CLIP = str(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4")

# name -> (arguments of the full run, arguments of the quick run)
BENCHMARKS = {
    "decode": (["decode.py", "--repeats", "5"], ["decode.py", "--repeats", "1"]),
    "backends-faces": (["backends.py", "faces", CLIP], ["backends.py", "faces", CLIP, "--fps", "2"]),
    "backends-body": (["backends.py", "body", CLIP], ["backends.py", "body", CLIP]),
    "backends-crops": (["backends.py", "crops", CLIP], ["backends.py", "crops", CLIP, "--fps", "1"]),
    "extract": (["extract.py"], ["extract.py", "--seconds", "20"]),
    "infer": (["infer.py"], ["infer.py", "--runs", "1"]),
    "reprocess": (["reprocess.py"], ["reprocess.py", "--videos", "2", "--seconds", "30"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run these benchmarks only")
    args = parser.parse_args(argv)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    summary = {}
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        command = [sys.executable, str(HERE / (quick if args.quick else full)[0]), *(quick if args.quick else full)[1:]]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        with open(out / f"{name}.txt", "w") as log:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
            log.write(done.stdout)
        print(done.stdout, flush=True)
        summary[name] = {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    failed = [name for name, s in summary.items() if s["returncode"]]
    print(f"{len(summary) - len(failed)} benchmarks ran, {len(failed)} failed {failed or ''}; outputs in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
