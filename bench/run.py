"""`make bench`: every benchmark of this folder, one after the other, each writing its JSON result, then
bench/RESULTS.md regenerated from those results.

    python bench/run.py [--quick] [--only NAME ...] [--render]

Each benchmark runs as a subprocess with ``--json bench/out/<name>.json`` (figures, conditions, the
command); its text output is kept in ``bench/out/<name>.txt`` and exit codes and times in
``bench/out/summary.json``. RESULTS.md is then written from every ``bench/out/*.json`` (results of earlier
runs of the benchmarks not run this time included, with their dates) and the hand-written context of
``bench/context.md``. ``--quick`` runs each benchmark at a small size (a smoke run that still measures)
into ``bench/out/quick/`` and renders ``bench/out/quick/RESULTS.md``, leaving bench/RESULTS.md alone.
``--render`` only regenerates RESULTS.md from the JSON files there.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parents[1] / "shared" / "media"
CLIP = str(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4")
BASELINE = "2e8fedf"  # the commit bench/small_jobs.py compares with (before small jobs were made small)
BEFORE_PERSONS = "8657020"  # the commit bench/identity.py compares with (face tracks only, one body per frame)

# name -> (arguments of the full run, arguments of the quick run), in the order of RESULTS.md
BENCHMARKS = {
    "decode": (["decode.py", "--repeats", "5"], ["decode.py", "--repeats", "1"]),
    "extract": (["extract.py"], ["extract.py", "--seconds", "20"]),
    "limit": (["limit.py", "--seconds", "60", "--repeats", "3"], ["limit.py", "--seconds", "30", "--repeats", "1"]),
    "small_jobs": (["small_jobs.py", "--repeats", "2"], ["small_jobs.py", "--repeats", "1"]),
    "scaling": (["scaling.py"], ["scaling.py", "--short-minutes", "0.5", "--clips", "6", "--clip-seconds", "10"]),
    "scaling-finalize": (["scaling.py", "--finalize-only"], ["scaling.py", "--finalize-only", "--clips", "12"]),
    "orchestration": (["orchestration.py"], ["orchestration.py", "--minutes", "1", "--repeats", "1"]),
    "marts": (["marts.py"], ["marts.py", "--videos", "200", "--repeats", "1"]),
    "backends-faces": (["backends.py", "faces", CLIP], ["backends.py", "faces", CLIP, "--fps", "2"]),
    "backends-body": (["backends.py", "body", CLIP], ["backends.py", "body", CLIP]),
    "backends-crops": (["backends.py", "crops", CLIP], ["backends.py", "crops", CLIP, "--fps", "1"]),
    "reprocess": (["reprocess.py"], ["reprocess.py", "--videos", "2", "--seconds", "30"]),
    "infer": (["infer.py"], ["infer.py", "--runs", "1"]),
    "expression_net": (["expression_net.py"], ["expression_net.py", "--seconds", "10", "--repeats", "1"]),
    "remote_store": (["remote_store.py"], ["remote_store.py", "--videos", "1", "--seconds", "10", "--repeats", "1"]),
    "analysis_fpr": (["analysis_fpr.py", "--reps", "60"], ["analysis_fpr.py", "--reps", "20", "--designs", "0:6"]),
    "identity": (["identity.py", "bench"], ["identity.py", "bench", "--seconds", "20", "--rounds", "1"]),
}
ORDER = [n for b in BENCHMARKS for n in ([b, "limit-profile"] if b == "limit" else [b])]  # limit.py writes two


def baseline_checkout(out: Path, commit: str = BASELINE) -> Path | None:
    """The code of ``commit`` under ``out`` (from git), for a benchmark's before/after; None without git."""
    target = out / f"baseline-{commit}"
    if not target.is_dir():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=HERE.parent, capture_output=True)
        if archive.returncode:
            return None
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def run_benchmarks(names: list[str], quick: bool, out: Path) -> dict:
    summary = {}
    for name in names:
        full, small = BENCHMARKS[name]
        script, *arguments = small if quick else full
        if name == "small_jobs" and (baseline := baseline_checkout(out)) is not None:
            arguments += ["--baseline", str(baseline)]
        if name == "identity" and (baseline := baseline_checkout(out, BEFORE_PERSONS)) is not None:
            arguments += ["--baseline-tree", str(baseline)]
        command = [sys.executable, str(HERE / script), *arguments, "--json", str(out / f"{name}.json")]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
        (out / f"{name}.txt").write_text(done.stdout)
        print(done.stdout[-3000:], flush=True)
        summary[name] = {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
    return summary


def cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def context_sections(path: Path) -> tuple[str, dict[str, str]]:
    """``bench/context.md``: the text before the first ``## name`` heading, and each section's text by name."""
    text = path.read_text() if path.is_file() else ""
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.M)
    return parts[0].strip(), {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def render(out: Path, target: Path, summary: dict | None = None) -> str:
    """RESULTS.md from the JSON results under ``out`` and the context of bench/context.md."""
    preamble, context = context_sections(HERE / "context.md")
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "summary"}
    parts = ["# Benchmark results", "", "<!-- generated by bench/run.py from bench/out/*.json and bench/context.md:"
             " edit those, not this file -->", "", preamble, ""]  # fmt: skip
    for name in ORDER + sorted(set(results) - set(ORDER)):
        result = results.get(name)
        if result is None:
            if name in context:
                parts += [f"## {name}", "", f"Not measured in the results this file was made from: `python "
                          f"bench/{BENCHMARKS.get(name, [[name + '.py']])[0][0]}`.", "", context[name], ""]  # fmt: skip
            continue
        conditions = ", ".join(f"{k}: {cell(v)}" for k, v in result["conditions"].items() if v is not None)
        headline = "; ".join(f"{k} **{cell(v)}**" for k, v in result["headline"].items() if v is not None)
        failed = summary and name in summary and summary[name]["returncode"]
        parts += [
            f"## {result['title']}",
            "",
            f"`{result['command']}` — measured {result['measured_at']} on {result['machine']['cpus']} CPUs"
            + (" (**the last run of this benchmark failed**; these are earlier figures)" if failed else ""),
            "",
            f"Conditions: {conditions}.",
            "",
        ]
        if headline:
            parts += [f"Headline: {headline}.", ""]
        parts += [table(result["rows"]), ""]
        if name in context:
            parts += [context[name], ""]
    text = "\n".join(parts).rstrip() + "\n"
    target.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run these benchmarks only")
    parser.add_argument("--render", action="store_true", help="only regenerate RESULTS.md from the JSON results")
    args = parser.parse_args(argv)
    out = HERE / "out" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    target = out / "RESULTS.md" if args.quick else HERE / "RESULTS.md"
    if args.render:
        render(out, target)
        print(f"{target} regenerated from {out}/*.json")
        return 0
    summary = run_benchmarks([n for n in BENCHMARKS if not args.only or n in args.only], args.quick, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    render(out, target, summary)
    failed = [name for name, s in summary.items() if s["returncode"]]
    print(f"{len(summary) - len(failed)} benchmarks ran, {len(failed)} failed {failed or ''}; outputs in {out}; "
          f"{target} regenerated")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
