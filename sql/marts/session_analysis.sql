-- grain: one row per session (the ANCOVA units when outcomes link students to session_id)
-- keys: session_id
-- depends: teacher_videos
-- Over the session's teacher videos. happiness_share and gesture_rate are ratios of sums over those videos
-- (as in teacher_summary); facial_group and body_group are the macros of sql/macros/groups.sql.
-- body_group comes from the gesture model's expressive_gesture_share when every teacher video of the
-- session with body rows has gesture predictions (a gesture model was promoted and has run), else from the
-- wrist-speed rule's gesture_rate (the fallback); body_measure names which ('gesture model <name>' or
-- 'wrist-speed rule').
with

in_sessions as (
    select * from teacher_videos
    where teacher_videos.session is not null
),

measures as (
    select
        in_sessions.session as session_id,
        string_agg(distinct in_sessions.teacher, ', ' order by in_sessions.teacher) as teacher_id,
        count(*) as n_videos,
        sum(in_sessions.duration_s) as duration_s,
        sum(in_sessions.face_rows) as face_rows,
        sum(in_sessions.body_rows) as body_rows,
        sum(in_sessions.expression_s) as expression_s,
        sum(in_sessions.happiness_s) / nullif(sum(in_sessions.expression_s), 0) as happiness_share,
        sum(in_sessions.body_s) as body_s,
        sum(in_sessions.gestures) / nullif(sum(in_sessions.body_s) / 60, 0) as gesture_rate,
        sum(in_sessions.gesture_samples) as gesture_samples,
        sum(in_sessions.expressive_samples) / nullif(sum(in_sessions.gesture_samples), 0)
            as expressive_gesture_share,
        count(*) filter (where in_sessions.gesture_samples is null and coalesce(in_sessions.body_rows, 0) > 0)
            as videos_without_gesture_model,
        string_agg(distinct in_sessions.gesture_model, ', ' order by in_sessions.gesture_model) as gesture_model
    from in_sessions
    group by in_sessions.session
),

measured as (
    select
        measures.*,
        coalesce(measures.gesture_samples > 0 and measures.videos_without_gesture_model = 0, false) as by_model
    from measures
),

final as (
    select
        measured.* exclude (by_model),
        case
            when measured.by_model then 'gesture model ' || measured.gesture_model
            else 'wrist-speed rule'
        end as body_measure,
        facial_group(measured.happiness_share) as facial_group,
        case
            when measured.by_model then body_group_from_share(measured.expressive_gesture_share)
            else body_group(measured.gesture_rate)
        end as body_group
    from measured
)

select * from final
