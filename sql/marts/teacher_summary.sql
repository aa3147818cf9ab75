-- grain: one row per teacher
-- keys: teacher
-- depends: teacher_videos
-- Over the teacher's videos (teacher_videos: role 'teacher' or not given). Times are sums; shares and
-- rates are ratios of sums (so longer videos weigh more); AU intensities are the unweighted mean of the
-- videos' means. The gesture model's expressive_gesture_share is a ratio of sums of body samples;
-- videos_without_gesture_model counts videos with body rows but no gesture predictions.
with

named_teachers as (
    select * from teacher_videos
    where teacher_videos.teacher is not null
),

final as (
    select
        named_teachers.teacher,
        count(*) as n_videos,
        count(distinct named_teachers.session) as n_sessions,
        sum(named_teachers.duration_s) as duration_s,
        sum(named_teachers.face_rows) as face_rows,
        sum(named_teachers.body_rows) as body_rows,
        sum(named_teachers.face_visible_s) as face_visible_s,
        sum(named_teachers.expression_s) as expression_s,
        sum(named_teachers.anger_s) / nullif(sum(named_teachers.expression_s), 0) as anger_share,
        sum(named_teachers.disgust_s) / nullif(sum(named_teachers.expression_s), 0) as disgust_share,
        sum(named_teachers.fear_s) / nullif(sum(named_teachers.expression_s), 0) as fear_share,
        sum(named_teachers.happiness_s) / nullif(sum(named_teachers.expression_s), 0) as happiness_share,
        sum(named_teachers.sadness_s) / nullif(sum(named_teachers.expression_s), 0) as sadness_share,
        sum(named_teachers.surprise_s) / nullif(sum(named_teachers.expression_s), 0) as surprise_share,
        sum(named_teachers.neutral_s) / nullif(sum(named_teachers.expression_s), 0) as neutral_share,
        sum(named_teachers.body_s) as body_s,
        sum(named_teachers.gestures) as gestures,
        sum(named_teachers.gestures) / nullif(sum(named_teachers.body_s) / 60, 0) as gesture_rate,
        sum(named_teachers.moving_s) / nullif(sum(named_teachers.body_s), 0) as moving_share,
        sum(named_teachers.gesture_samples) as gesture_samples,
        sum(named_teachers.expressive_samples) / nullif(sum(named_teachers.gesture_samples), 0)
            as expressive_gesture_share,
        count(*) filter (where named_teachers.gesture_samples is null and coalesce(named_teachers.body_rows, 0) > 0)
            as videos_without_gesture_model,
        string_agg(distinct named_teachers.gesture_model, ', ' order by named_teachers.gesture_model)
            as gesture_model,
        avg(columns('^AU\d+_r$'))
    from named_teachers
    group by named_teachers.teacher
)

select * from final
