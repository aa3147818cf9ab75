-- grain: one row per video whose main face is a teacher
-- keys: video_id
-- depends: video_summary
-- The videos of teachers: role 'teacher' or not given in the manifest (videos of the students, role
-- 'students', are left out). Every per-teacher and per-session measure reads these.
with

summaries as (
    select * from video_summary
),

final as (
    select summaries.*
    from summaries
    where summaries.role is null or lower(summaries.role) = 'teacher'
)

select * from final
