-- grain: one row per run × video × failed stage
-- keys: run_id, video_id, stage
-- source: <store>/catalog/failures.parquet and the fragments recorded since (failures-<seq>.parquet, tasks.store);
-- a row found in both (a compaction interrupted by a crash) is one row
create or replace view failures as
select distinct * from read_parquet('${store}/catalog/failures*.parquet', union_by_name = true);
