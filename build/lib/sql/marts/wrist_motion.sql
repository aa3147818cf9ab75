-- grain: one row per video × person × body-sampled frame
-- keys: video_id, person_id, frame
-- depends: body
-- Wrist speed of each body sample since the person's previous sample, in shoulder widths per second,
-- measured in the body's own frame: each wrist's position relative to the shoulder midpoint, divided by
-- the shoulder width, so a panning or zooming camera and a teacher walking across the room do not count
-- as gestures; only the hands moving relative to the shoulders do. A wrist counts only when it and both
-- shoulders have visibility of at least getvariable('keypoint_min_visibility') in both samples;
-- wrist_speed is the faster counted wrist (null when neither counts, and on a person's first sample).
-- A sample is moving when wrist_speed is at least getvariable('gesture_min_speed'); a gesture starts at a
-- moving sample whose previous sample was not moving (so a gesture held over several samples counts once).
with

body_samples as (
    select * from body
),

visible_points as (
    select
        body_samples.video_id,
        body_samples.person_id,
        body_samples.frame,
        body_samples.timestamp,
        body_samples.left_wrist_v >= getvariable('keypoint_min_visibility') as left_wrist_visible,
        body_samples.right_wrist_v >= getvariable('keypoint_min_visibility') as right_wrist_visible,
        (body_samples.left_shoulder_x + body_samples.right_shoulder_x) / 2 as mid_x,
        (body_samples.left_shoulder_y + body_samples.right_shoulder_y) / 2 as mid_y,
        case
            when body_samples.left_shoulder_v >= getvariable('keypoint_min_visibility')
                and body_samples.right_shoulder_v >= getvariable('keypoint_min_visibility')
                then sqrt(
                    (body_samples.left_shoulder_x - body_samples.right_shoulder_x) ** 2
                    + (body_samples.left_shoulder_y - body_samples.right_shoulder_y) ** 2
                )
        end as shoulder_width_px,
        body_samples.left_wrist_x,
        body_samples.left_wrist_y,
        body_samples.right_wrist_x,
        body_samples.right_wrist_y
    from body_samples
),

body_frame as (
    select
        visible_points.video_id,
        visible_points.person_id,
        visible_points.frame,
        visible_points.timestamp,
        visible_points.left_wrist_visible and visible_points.shoulder_width_px > 0 as left_counts,
        visible_points.right_wrist_visible and visible_points.shoulder_width_px > 0 as right_counts,
        (visible_points.left_wrist_x - visible_points.mid_x) / visible_points.shoulder_width_px as left_u,
        (visible_points.left_wrist_y - visible_points.mid_y) / visible_points.shoulder_width_px as left_v,
        (visible_points.right_wrist_x - visible_points.mid_x) / visible_points.shoulder_width_px as right_u,
        (visible_points.right_wrist_y - visible_points.mid_y) / visible_points.shoulder_width_px as right_v
    from visible_points
),

steps as (
    select
        body_frame.video_id,
        body_frame.person_id,
        body_frame.frame,
        body_frame.timestamp,
        body_frame.timestamp - lag(body_frame.timestamp) over samples as dt_s,
        case
            when body_frame.left_counts and lag(body_frame.left_counts) over samples
                then sqrt(
                    (body_frame.left_u - lag(body_frame.left_u) over samples) ** 2
                    + (body_frame.left_v - lag(body_frame.left_v) over samples) ** 2
                )
        end as left_wrist_sw,
        case
            when body_frame.right_counts and lag(body_frame.right_counts) over samples
                then sqrt(
                    (body_frame.right_u - lag(body_frame.right_u) over samples) ** 2
                    + (body_frame.right_v - lag(body_frame.right_v) over samples) ** 2
                )
        end as right_wrist_sw
    from body_frame
    window samples as (
        partition by body_frame.video_id, body_frame.person_id
        order by body_frame.timestamp, body_frame.frame
    )
),

speeds as (
    select
        steps.video_id,
        steps.person_id,
        steps.frame,
        steps.timestamp,
        steps.dt_s,
        case
            when steps.dt_s > 0 then greatest(steps.left_wrist_sw, steps.right_wrist_sw) / steps.dt_s
        end as wrist_speed
    from steps
),

moving as (
    select
        speeds.*,
        speeds.wrist_speed >= getvariable('gesture_min_speed') as is_moving
    from speeds
),

final as (
    select
        moving.video_id,
        moving.person_id,
        moving.frame,
        moving.timestamp,
        moving.dt_s,
        moving.wrist_speed,
        moving.is_moving,
        coalesce(
            moving.is_moving
            and not coalesce(
                lag(moving.is_moving) over (
                    partition by moving.video_id, moving.person_id order by moving.timestamp, moving.frame
                ),
                false
            ),
            false
        ) as gesture_start
    from moving
)

select * from final
