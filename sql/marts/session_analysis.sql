-- grain: one row per session (the ANCOVA units when outcomes link students to session_id)
-- keys: session_id
-- depends: video_summary
-- Over the session's teacher videos (role 'teacher' or not given). happiness_share and gesture_rate are
-- ratios of sums over those videos (as in teacher_summary). Groups (null when the measure is missing):
-- facial_group = 'positive' when happiness_share >= getvariable('positive_happiness_share'), else 'neutral';
-- body_group = 'expressive' when gesture_rate >= getvariable('expressive_gesture_rate'), else 'still'.
with

teacher_videos as (
    select * from video_summary
    where video_summary.session is not null
        and (video_summary.role is null or lower(video_summary.role) = 'teacher')
),

measures as (
    select
        teacher_videos.session as session_id,
        string_agg(distinct teacher_videos.teacher, ', ' order by teacher_videos.teacher) as teacher_id,
        count(*) as n_videos,
        sum(teacher_videos.duration_s) as duration_s,
        sum(teacher_videos.expression_s) as expression_s,
        sum(teacher_videos.happiness_s) / nullif(sum(teacher_videos.expression_s), 0) as happiness_share,
        sum(teacher_videos.body_s) as body_s,
        sum(teacher_videos.gestures) / nullif(sum(teacher_videos.body_s) / 60, 0) as gesture_rate
    from teacher_videos
    group by teacher_videos.session
),

final as (
    select
        measures.*,
        case
            when measures.happiness_share >= getvariable('positive_happiness_share') then 'positive'
            when measures.happiness_share is not null then 'neutral'
        end as facial_group,
        case
            when measures.gesture_rate >= getvariable('expressive_gesture_rate') then 'expressive'
            when measures.gesture_rate is not null then 'still'
        end as body_group
    from measures
)

select * from final
