-- grain: one row per video (content hash)
-- keys: video_id
-- source: <store>/catalog/videos.parquet and the fragments recorded since (videos-<seq>.parquet, tasks.store):
-- of each video, the row of the newest fragment, else the file's
create or replace view videos as
select * exclude (filename) from read_parquet('${store}/catalog/videos*.parquet', filename = true, union_by_name = true)
qualify row_number() over (
    partition by video_id order by filename like '%/videos.parquet', filename desc
) = 1;
