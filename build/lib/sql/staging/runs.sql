-- grain: one row per nightly-corpus run
-- keys: run_id
-- source: <store>/catalog/runs.parquet
create or replace view runs as
select * from read_parquet('${store}/catalog/runs.parquet');
