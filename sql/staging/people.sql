-- grain: one row per person of a video linked to the other videos of its course (lessonlens run --link-people)
-- keys: video_id, person_id
-- source: <store>/catalog/people.parquet (tasks.extract.linking, rewritten whole by each linking run);
-- person_key is "<video_id>:<person_id>" of the person's first appearance in the course. The face descriptors
-- it was made from are not readable here (tasks.analyse.warehouse.QUERYABLE).
create or replace view people as
select video_id, person_id, person_key, course from read_parquet('${store}/catalog/people.parquet');
