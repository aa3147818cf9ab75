-- grain: one row per video × body-sampled frame × person
-- keys: video_id, frame, person_id
-- source: <store>/body/video_id=*/part-0.parquet (BlazePose keypoints: <name>_x, <name>_y, <name>_v)
create or replace view body as
select
    cast(video_id as varchar) as video_id,
    * exclude (video_id)
from read_parquet('${store}/body/*/*.parquet', hive_partitioning = true, hive_types = {'video_id': varchar});
