"""False-positive rate and power of the analysis the report tells the reader to read, by simulation.

Each design: students in units (teachers, optionally with sessions nested in them) with a 2 x 2 design
(facial x body) set per teacher, cells balanced over a random order of the teachers (6 teachers: 2, 2, 1, 1).
A student's pre-test has a teacher component (pre-test ICC 0.25); ``y = 0.5 pretest + a_teacher + b_session + e``
with ``var(a) + var(b) = icc`` (half each when sessions are nested) and ``var(e) = 1 - icc``. Sizes: 20
students per unit (equal) or uniform 5..35 (unequal, mean 20).

Per replicate, the design-aware analysis (`tasks.analyse.reading.analyse_outcome` on the levels that
`tasks.analyse.nesting.detect_levels` finds; ``details=False``: the same tests, without the means, intervals
and assumption checks the report adds) is run under the null (no effect: its 3 factor terms pooled,
3 tests per replicate) and under an alternative (a facial effect ``delta = 2.5 sqrt(4 tau2 / k)``, tau2 the
variance of a teacher's mean outcome, so the ANCOVA of teacher means has roughly 50-80 % power). Beside it,
both unit-level methods whatever the rule picks (the ANCOVA of unit means; the mixed model with Satterthwaite
df), paper 1's student-level ANCOVA, and how often the "optimistic" flag fires. The null tests per
replicate pair: the 3 terms of the null data set and body and the interaction of the alternative one (still
null there), 5 R in all; Monte-Carlo SE of a rate near 5 %: ``sqrt(0.05 0.95 / 5R)`` (R = 60: 1.3 %), a
little more in designs with few residual df, where the terms of one data set share their error estimate.

    python bench/analysis_fpr.py [--reps 60] [--seed 1] [--designs 0:42] [--json bench/out/analysis_fpr.json]

Each design draws from its own generator (seed, design index), so a slice of the designs (``--designs 0:21``
and ``21:42`` in two processes) gives the same rows as the whole run.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import command_line, write_result  # noqa: E402
from tasks.analyse.mixed import mixed_model  # noqa: E402
from tasks.analyse.nesting import detect_levels, unit_keys  # noqa: E402
from tasks.analyse.reading import analyse_outcome  # noqa: E402
from tasks.analyse.stats import ancova, unit_means  # noqa: E402

FACTORS = ["facial", "body"]
TERMS = ["facial", "body", "facial:body"]


def designs() -> list[dict]:
    flat = [{"teachers": k, "sessions": 1, "sizes": s, "icc": icc}
            for k in (6, 8, 10, 12, 30) for s in ("equal", "unequal") for icc in (0.0, 0.1, 0.3)]  # fmt: skip
    nested = [{"teachers": k, "sessions": 3, "sizes": s, "icc": icc}
              for k in (8, 12) for s in ("equal", "unequal") for icc in (0.0, 0.1, 0.3)]  # fmt: skip
    return flat + nested


def simulate(design: dict, delta: float, rng: np.random.Generator) -> pd.DataFrame:
    k, m, icc = design["teachers"], design["sessions"], design["icc"]
    order = rng.permutation(k)
    share = 0.5 if m > 1 else 1.0  # of the icc that sits at the teacher level
    columns = {name: [] for name in ("teacher", "session", "facial", "body", "pretest", "y")}
    for t in range(k):
        facial, body = int(order[t] % 2), int((order[t] // 2) % 2)
        a, p_t = rng.normal(0, np.sqrt(icc * share)), rng.normal(0, 0.5)
        for s in range(m):
            b = rng.normal(0, np.sqrt(icc * (1 - share))) if m > 1 else 0.0
            n = 20 if design["sizes"] == "equal" else int(rng.integers(5, 36))
            pretest = p_t + rng.normal(0, np.sqrt(0.75), n)
            columns["y"].append(0.5 * pretest + delta * facial + a + b + rng.normal(0, np.sqrt(1 - icc), n))
            columns["pretest"].append(pretest)
            for name, value in (("teacher", f"t{t}"), ("session", f"t{t}s{s}"), ("facial", "ab"[facial]),
                                ("body", "cd"[body])):  # fmt: skip
                columns[name].append(np.full(n, value))
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})


def tau2(design: dict) -> float:
    """Variance of a teacher's mean outcome beyond the pre-test (for the alternative's effect size)."""
    n = 20 * design["sessions"]
    return design["icc"] + (1 - design["icc"]) / n


def one(data: pd.DataFrame, clusters: list[str]) -> dict:
    levels = detect_levels(data, FACTORS, clusters)
    keyed = data.assign(**unit_keys(data, clusters))
    analysis = analyse_outcome(keyed, "y", FACTORS, ["pretest"], levels, details=False)  # the same tests
    read = dict(zip(analysis.table["source"], analysis.table["p"], strict=True))
    student = dict(zip(analysis.student_level.table["source"], analysis.student_level.table["p"], strict=True))
    unit = levels.unit
    if analysis.method == "unit-means ANCOVA":
        cluster_means = read
    else:
        means = ancova(unit_means(keyed, "y", FACTORS, ["pretest"], unit), "y", FACTORS, ["pretest"])
        cluster_means = dict(zip(means.table["source"], means.table["p"], strict=True))
    if analysis.method == "mixed model":
        mixed = read
    else:
        try:
            table = mixed_model(keyed, "y", FACTORS, ["pretest"], unit, means=False).table
            mixed = dict(zip(table["source"], table["p"], strict=True))
        except ValueError:  # rank-deficient or no residual df
            mixed = dict.fromkeys(TERMS, np.nan)
    return {"method": analysis.method, "unit": unit, "read": read, "student": student, "means": cluster_means,
            "mixed": mixed, "flag": analysis.clustering["optimistic"]}  # fmt: skip


def rate(values: list[float]) -> float | None:
    values = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(np.array(values) < 0.05)), 4) if values else None


def run_design(design: dict, reps: int, rng: np.random.Generator) -> dict:
    clusters = ["teacher", "session"] if design["sessions"] > 1 else ["teacher"]
    delta = 2.5 * np.sqrt(4 * tau2(design) / design["teachers"])
    null, alt, methods, flags = {m: [] for m in ("read", "means", "mixed", "student")}, {}, set(), []
    alt = {m: [] for m in null}
    for _ in range(reps):
        result = one(simulate(design, 0.0, rng), clusters)
        methods.add(f"{result['method']} per {result['unit']}")
        flags.append(result["flag"])
        for m in null:
            null[m] += [result[m][t] for t in TERMS]
        result = one(simulate(design, delta, rng), clusters)
        for m in alt:
            alt[m].append(result[m]["facial"])
            null[m] += [result[m][t] for t in TERMS[1:]]  # body and the interaction stay null
    power_means = rate(alt["means"])
    power_read = rate(alt["read"])
    label = f"{design['teachers']} teachers" + (f" x {design['sessions']} sessions" if design["sessions"] > 1 else "")
    return {
        "design": label,
        "sizes": design["sizes"],
        "icc": design["icc"],
        "read_method": ", ".join(sorted(methods)),
        "fpr_read": rate(null["read"]),
        "fpr_unit_means": rate(null["means"]),
        "fpr_mixed_satterthwaite": rate(null["mixed"]),
        "fpr_student_level": rate(null["student"]),
        "power_read": power_read,
        "power_unit_means": power_means,
        "power_ratio": round(power_read / power_means, 3) if power_means else None,
        "flag_rate": round(float(np.mean(flags)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=60, help="replicates per design, each under null and alternative")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--designs", default=None, metavar="START:STOP", help="a slice of the designs (default all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    first, last = (int(v) if v else None for v in (args.designs or ":").split(":"))
    chosen = list(enumerate(designs()))[first:last]
    rows, start = [], time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate unit-level tables (1 residual df at 6 teachers) warn by design
        for index, design in chosen:
            rows.append(run_design(design, args.reps, np.random.default_rng([args.seed, index])))
            print(rows[-1], flush=True)
    in_range = [r for r in rows if r["fpr_read"] is not None]
    worst_low = min(r["fpr_read"] for r in in_range)
    worst_high = max(r["fpr_read"] for r in in_range)
    ratios = [r["power_ratio"] for r in rows if r["power_ratio"] is not None]
    write_result(
        args.json,
        "analysis_fpr",
        "Analysis: false positives and power of the analysis the report tells you to read",
        command_line(__file__, argv),
        {
            "replicates per design": args.reps,
            "null tests per design": 5 * args.reps,
            "Monte-Carlo SE at 5 %": round(float(np.sqrt(0.05 * 0.95 / (5 * args.reps))), 4),
            "designs": args.designs or "all",
            "power replicates": args.reps,
            "read for unit-level factors": "ANCOVA of teacher means",
            "seed": args.seed,
            "seconds": round(time.perf_counter() - start, 1),
        },  # fmt: skip
        rows,
        {
            "false-positive rate of the read analysis, lowest": worst_low,
            "highest": worst_high,
            "power vs the ANCOVA of cluster means, lowest ratio": min(ratios) if ratios else None,
        },  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
