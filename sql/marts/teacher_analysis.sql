-- grain: one row per teacher (the ANCOVA units when outcomes link students to teacher_id)
-- keys: teacher_id
-- depends: teacher_summary
-- Groups as in session_analysis (the macros of sql/macros/groups.sql), from the teacher's happiness_share
-- and gesture_rate over all their teacher videos.
with

teachers as (
    select * from teacher_summary
),

final as (
    select
        teachers.teacher as teacher_id,
        teachers.n_videos,
        teachers.n_sessions,
        teachers.duration_s,
        teachers.face_rows,
        teachers.body_rows,
        teachers.expression_s,
        teachers.happiness_share,
        teachers.body_s,
        teachers.gesture_rate,
        facial_group(teachers.happiness_share) as facial_group,
        body_group(teachers.gesture_rate) as body_group
    from teachers
)

select * from final
