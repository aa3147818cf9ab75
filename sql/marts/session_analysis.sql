-- grain: one row per session (the ANCOVA units when outcomes link students to session_id)
-- keys: session_id
-- depends: teacher_videos
-- Over the session's teacher videos. happiness_share and gesture_rate are ratios of sums over those videos
-- (as in teacher_summary); facial_group and body_group are the macros of sql/macros/groups.sql.
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
        sum(in_sessions.gestures) / nullif(sum(in_sessions.body_s) / 60, 0) as gesture_rate
    from in_sessions
    group by in_sessions.session
),

final as (
    select
        measures.*,
        facial_group(measures.happiness_share) as facial_group,
        body_group(measures.gesture_rate) as body_group
    from measures
)

select * from final
