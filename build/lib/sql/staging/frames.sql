-- grain: one row per video × sampled frame × face track
-- keys: video_id, frame, face_id
-- source: <store>/frames/video_id=*/part-0.parquet (OpenFace column names where they overlap)
create or replace view frames as
select
    cast(video_id as varchar) as video_id,
    * exclude (video_id)
from read_parquet('${store}/frames/*/*.parquet', hive_partitioning = true, hive_types = {'video_id': varchar});
