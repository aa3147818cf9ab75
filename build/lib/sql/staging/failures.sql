-- grain: one row per run × video × failed stage
-- keys: run_id, video_id, stage
-- source: <store>/catalog/failures.parquet
create or replace view failures as
select * from read_parquet('${store}/catalog/failures.parquet');
