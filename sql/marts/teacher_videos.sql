-- grain: one row per video whose main face is a teacher
-- keys: video_id
-- depends: video_summary
-- The videos of teachers: role 'teacher' or not given in the manifest (videos of the students, role
-- 'students', are left out). Every per-teacher and per-session measure reads these. A video whose manifest
-- names no teacher takes its primary person's person_key as teacher (linked with --link-people), so the
-- per-teacher measures need no manifest column.
with

summaries as (
    select * from video_summary
),

final as (
    select summaries.* replace (coalesce(summaries.teacher, summaries.primary_person_key) as teacher)
    from summaries
    where summaries.role is null or lower(summaries.role) = 'teacher'
)

select * from final
