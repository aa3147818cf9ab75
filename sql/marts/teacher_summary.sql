-- grain: one row per teacher
-- keys: teacher
-- depends: video_summary
-- Over the teacher's videos: those with a teacher whose role is 'teacher' or not given (videos of the
-- students, role 'students', are left out). Times are sums; shares and rates are ratios of sums (so
-- longer videos weigh more); AU intensities are the unweighted mean of the videos' means.
with

teacher_videos as (
    select * from video_summary
    where video_summary.teacher is not null
        and (video_summary.role is null or lower(video_summary.role) = 'teacher')
),

final as (
    select
        teacher_videos.teacher,
        count(*) as n_videos,
        count(distinct teacher_videos.session) as n_sessions,
        sum(teacher_videos.duration_s) as duration_s,
        sum(teacher_videos.face_visible_s) as face_visible_s,
        sum(teacher_videos.expression_s) as expression_s,
        sum(teacher_videos.anger_s) / nullif(sum(teacher_videos.expression_s), 0) as anger_share,
        sum(teacher_videos.disgust_s) / nullif(sum(teacher_videos.expression_s), 0) as disgust_share,
        sum(teacher_videos.fear_s) / nullif(sum(teacher_videos.expression_s), 0) as fear_share,
        sum(teacher_videos.happiness_s) / nullif(sum(teacher_videos.expression_s), 0) as happiness_share,
        sum(teacher_videos.sadness_s) / nullif(sum(teacher_videos.expression_s), 0) as sadness_share,
        sum(teacher_videos.surprise_s) / nullif(sum(teacher_videos.expression_s), 0) as surprise_share,
        sum(teacher_videos.neutral_s) / nullif(sum(teacher_videos.expression_s), 0) as neutral_share,
        sum(teacher_videos.body_s) as body_s,
        sum(teacher_videos.gestures) as gestures,
        sum(teacher_videos.gestures) / nullif(sum(teacher_videos.body_s) / 60, 0) as gesture_rate,
        sum(teacher_videos.moving_s) / nullif(sum(teacher_videos.body_s), 0) as moving_share,
        avg(columns('^AU\d+_r$'))
    from teacher_videos
    group by teacher_videos.teacher
)

select * from final
