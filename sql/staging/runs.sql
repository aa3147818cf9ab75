-- grain: one row per nightly-corpus run
-- keys: run_id
-- source: <store>/catalog/runs.parquet and the fragments recorded since (runs-<seq>.parquet, tasks.store);
-- a row found in both (a compaction interrupted by a crash) is one row
create or replace view runs as
select distinct * from read_parquet('${store}/catalog/runs*.parquet', union_by_name = true);
