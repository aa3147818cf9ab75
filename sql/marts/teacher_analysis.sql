-- grain: one row per teacher (the ANCOVA units when outcomes link students to teacher_id)
-- keys: teacher_id
-- depends: teacher_summary
-- Groups as in session_analysis (the macros of sql/macros/groups.sql), from the teacher's happiness_share
-- and gesture_rate over all their teacher videos; body_group and body_measure from the gesture model's
-- expressive_gesture_share when all their videos with body rows have gesture predictions (as in
-- session_analysis), else from the wrist-speed rule.
with

teachers as (
    select * from teacher_summary
),

measured as (
    select
        teachers.*,
        coalesce(teachers.gesture_samples > 0 and teachers.videos_without_gesture_model = 0, false) as by_model
    from teachers
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
        teachers.gesture_samples,
        teachers.expressive_gesture_share,
        teachers.videos_without_gesture_model,
        teachers.gesture_model,
        case when teachers.by_model then 'gesture model ' || teachers.gesture_model else 'wrist-speed rule' end
            as body_measure,
        facial_group(teachers.happiness_share) as facial_group,
        case
            when teachers.by_model then body_group_from_share(teachers.expressive_gesture_share)
            else body_group(teachers.gesture_rate)
        end as body_group
    from measured as teachers
)

select * from final
