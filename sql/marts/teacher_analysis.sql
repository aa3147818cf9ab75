-- grain: one row per teacher (the ANCOVA units when outcomes link students to teacher_id)
-- keys: teacher_id
-- depends: teacher_summary
-- Groups as in session_analysis, from the teacher's happiness_share and gesture_rate over all their
-- teacher videos: facial_group 'positive' / 'neutral' by getvariable('positive_happiness_share'),
-- body_group 'expressive' / 'still' by getvariable('expressive_gesture_rate').
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
        teachers.expression_s,
        teachers.happiness_share,
        teachers.body_s,
        teachers.gesture_rate,
        case
            when teachers.happiness_share >= getvariable('positive_happiness_share') then 'positive'
            when teachers.happiness_share is not null then 'neutral'
        end as facial_group,
        case
            when teachers.gesture_rate >= getvariable('expressive_gesture_rate') then 'expressive'
            when teachers.gesture_rate is not null then 'still'
        end as body_group
    from teachers
)

select * from final
