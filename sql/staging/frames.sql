-- grain: one row per video × sampled frame × face track
-- keys: video_id, frame, face_id
-- source: <store>/frames/video_id=*/part-0.parquet (OpenFace column names where they overlap)
-- person_id and tile are null in files written before they existed (the empty relation declares them).
create or replace view frames as
select
    cast(video_id as varchar) as video_id,
    * exclude (video_id)
from (
    select * from read_parquet('${store}/frames/*/*.parquet', hive_partitioning = true, union_by_name = true,
                               hive_types = {'video_id': varchar})
    union all by name
    select cast(null as integer) as person_id, cast(null as tinyint) as tile where false
);
