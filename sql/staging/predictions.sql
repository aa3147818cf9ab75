-- grain: one row per video × task × model version × face track × window
-- keys: task, model_version, video_id, face_id, window
-- source: <store>/predictions/task=*/model_version=*/video_id=*/part-0.parquet (p_<class> columns differ per task)
-- person_id (the person of the window's track) is null in files written before it existed.
create or replace view predictions as
select
    cast(task as varchar) as task,
    cast(model_version as varchar) as model_version,
    cast(video_id as varchar) as video_id,
    * exclude (task, model_version, video_id)
from (
    select * from read_parquet('${store}/predictions/*/*/*/*.parquet', hive_partitioning = true,
                               union_by_name = true,
                               hive_types = {'video_id': varchar, 'task': varchar, 'model_version': varchar})
    union all by name
    select cast(null as integer) as person_id where false
);
