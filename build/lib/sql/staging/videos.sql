-- grain: one row per video (content hash)
-- keys: video_id
-- source: <store>/catalog/videos.parquet
create or replace view videos as
select * from read_parquet('${store}/catalog/videos.parquet');
