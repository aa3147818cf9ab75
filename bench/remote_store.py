"""Remote vs local store: the same corpus run into a local folder and into S3 (corpus on S3 too), and queries.

    python bench/remote_store.py [--videos 2] [--seconds 30] [--json out.json]

The S3 API is moto's server on 127.0.0.1 (``tests/s3.py``), in this process: it measures what the object-store
path costs in requests and copies (listing, streaming each video to the workers' scratch, uploads of every
file, the lease), not a network's latency. Both runs use one temporary Prefect API and a LocalCluster of 2
workers; each is followed by a rerun with nothing to do. The queries compare DuckDB over the local folder,
over S3 through the store's fsspec filesystem registered on the connection (what ``lessonlens query`` does),
and over S3 through pyarrow's own S3 filesystem as an Arrow dataset registered in DuckDB (faster to set up,
but outside DuckDB's file sandbox, so not used). DuckDB's httpfs extension is not measured: the registry's
``duckdb-extension-httpfs`` is built for DuckDB 1.5, not the pinned 2.0.0, and no download at run time is
allowed.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/s3.py: the S3 server of the tests

from extract import ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py

from flows.cli import main as cli
from tasks.analyse.warehouse import run_query
from tasks.store import Store
from tests.s3 import s3_server

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
BUCKET = "bench"
QUERY = "select video_id, count(*) as n, avg(AU12_r) as au12 from frames group by 1 order by 1"


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """(median seconds over ``repeats`` calls, the last call's result)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def duckdb_alternatives(store: Store, endpoint: str, repeats: int) -> dict[str, float]:
    """Seconds of the bare frames aggregate on S3: registered fsspec filesystem vs pyarrow's S3 dataset."""
    import duckdb
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    glob = f"{store.url}/frames/*/*.parquet"

    def fsspec_read():
        con = duckdb.connect()
        con.register_filesystem(store.reader_filesystem())
        sql = f"select video_id, count(*), avg(AU12_r) from read_parquet('{glob}', hive_partitioning=true) group by 1"
        return con.sql(sql).fetchall()

    def arrow_read():
        s3 = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=False)
        data = ds.dataset(f"{store.root.path}/frames", filesystem=s3, format="parquet", partitioning="hive")
        con = duckdb.connect()
        con.register("frames", data)
        return con.sql("select video_id, count(*), avg(AU12_r) from frames group by 1").fetchall()

    fsspec_s, a = timed(fsspec_read, repeats)
    arrow_s, b = timed(arrow_read, repeats)
    assert sorted(a) == sorted(b), "the two readers disagree"
    return {"registered_fsspec_s": round(fsspec_s, 3), "pyarrow_s3_dataset_s": round(arrow_s, 3)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3, help="query repeats (median)")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    from flows.engine import prefect_api

    with tempfile.TemporaryDirectory() as tmp, s3_server(buckets=(BUCKET,)) as endpoint, prefect_api():
        import s3fs

        root = Path(tmp)
        corpus = root / "corpus"
        for i in range(args.videos):  # different lengths: different contents, hence different videos
            ping_pong(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4", corpus / f"lesson_{i}.mp4", args.seconds + i)
        size = sum(p.stat().st_size for p in corpus.glob("*.mp4"))
        upload_s, _ = timed(lambda: s3fs.S3FileSystem().put(f"{corpus}/", f"{BUCKET}/corpus/", recursive=True))
        runs = {
            "local": (str(corpus), str(root / "store")),
            "s3": (f"s3://{BUCKET}/corpus", f"s3://{BUCKET}/store"),
        }
        rows = []
        for name, (source, store) in runs.items():
            run_args = ["run", source, "--store", store, "--workers", "2"]
            full_s, code = timed(lambda a=run_args: cli(a))
            assert code == 0, f"{name} run failed"
            rerun_s, _ = timed(lambda a=run_args: cli(a))
            query_s, table = timed(lambda s=store: run_query(Store(s), QUERY), args.repeats)
            rows.append({"store": name, "run_s": round(full_s, 1), "rerun_nothing_to_do_s": round(rerun_s, 1),
                         "query_s": round(query_s, 2), "rows": table.num_rows})  # fmt: skip
        local, remote = rows
        assert local["rows"] == remote["rows"]
        alternatives = duckdb_alternatives(Store(runs["s3"][1]), endpoint, args.repeats)
    headline = {
        "s3 / local run": round(remote["run_s"] / local["run_s"], 2),
        "s3 / local rerun": round(remote["rerun_nothing_to_do_s"] / local["rerun_nothing_to_do_s"], 2),
        "s3 / local query": round(remote["query_s"] / local["query_s"], 2),
        "pyarrow dataset / registered fsspec (bare scan)": round(
            alternatives["pyarrow_s3_dataset_s"] / alternatives["registered_fsspec_s"], 2
        ),
    }
    conditions = {"videos": args.videos, "seconds_each": args.seconds, "corpus_mb": round(size / 1e6, 1),
                  "s3": "moto ThreadedMotoServer on 127.0.0.1 (same process)", "upload_corpus_s": round(upload_s, 2),
                  "query": QUERY, **alternatives, "workers": 2}  # fmt: skip
    for row in rows:
        print(row)
    print(conditions)
    print(headline)
    write_result(args.json, "remote_store", "Store and corpus on S3 vs a local folder", command_line(__file__, argv),
                 conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
