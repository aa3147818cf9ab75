-- grain: one row per video × person × body sample covered by a window of the gesture predictions
-- keys: video_id, person_id, frame
-- depends: body, predictions
-- Gesture predictions (task 'gesture', teacher_gesture; face_id holds the body person_id) exist only once a
-- gesture model was promoted: there is no rule baseline. Model: per video, the greatest model_version (text
-- order), as in expression_windows. Time is counted as in expression_frames, without double counting:
-- each body sample takes the label of the covering window (start_time <= timestamp <= end_time) whose centre
-- is nearest, ties to the later window; is_expressive marks McNeill's gesture types (is_expressive_gesture
-- in sql/macros/groups.sql, models.rules.EXPRESSIVE_GESTURES).
with

gesture_predictions as (
    select * from predictions where task = 'gesture'
),

body_samples as (
    select * from body
),

latest_models as (
    select
        gesture_predictions.video_id,
        max(gesture_predictions.model_version) as model_version
    from gesture_predictions
    group by gesture_predictions.video_id
),

windows as (
    select gesture_predictions.*
    from gesture_predictions
    inner join latest_models
        on gesture_predictions.video_id = latest_models.video_id
        and gesture_predictions.model_version = latest_models.model_version
),

covering as (
    select
        body_samples.video_id,
        body_samples.person_id,
        body_samples.frame,
        body_samples.timestamp,
        windows.window_index,
        windows.label,
        windows.model_name,
        windows.model_version,
        row_number() over (
            partition by body_samples.video_id, body_samples.person_id, body_samples.frame
            order by
                abs(body_samples.timestamp - (windows.start_time + windows.end_time) / 2),
                windows.start_time desc
        ) as nearest
    from body_samples
    inner join windows
        on body_samples.video_id = windows.video_id
        and body_samples.person_id = windows.face_id
        and body_samples.timestamp between windows.start_time and windows.end_time
),

final as (
    select
        covering.video_id,
        covering.person_id,
        covering.frame,
        covering.timestamp,
        covering.window_index,
        covering.label,
        is_expressive_gesture(covering.label) as is_expressive,
        covering.model_name,
        covering.model_version
    from covering
    where covering.nearest = 1
)

select * from final
