-- grain: one row per video × person × body-sampled frame
-- keys: video_id, person_id, frame
-- depends: body
-- Wrist speed of each body sample since the person's previous sample, in shoulder widths per second:
-- the wrist's displacement (pixels) divided by the mean shoulder width of the two samples (pixels) and
-- by the time between them. A wrist counts only when it and both shoulders have visibility of at least
-- getvariable('keypoint_min_visibility') in both samples; wrist_speed is the faster counted wrist (null
-- when neither counts, and on a person's first sample). A sample is moving when wrist_speed is at least
-- getvariable('gesture_min_speed'); a gesture starts at a moving sample whose previous sample was not
-- moving (so a gesture held over several samples counts once).
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
        body_samples.left_wrist_x,
        body_samples.left_wrist_y,
        body_samples.right_wrist_x,
        body_samples.right_wrist_y,
        body_samples.left_wrist_v >= getvariable('keypoint_min_visibility') as left_wrist_visible,
        body_samples.right_wrist_v >= getvariable('keypoint_min_visibility') as right_wrist_visible,
        case
            when body_samples.left_shoulder_v >= getvariable('keypoint_min_visibility')
                and body_samples.right_shoulder_v >= getvariable('keypoint_min_visibility')
                then sqrt(
                    (body_samples.left_shoulder_x - body_samples.right_shoulder_x) ** 2
                    + (body_samples.left_shoulder_y - body_samples.right_shoulder_y) ** 2
                )
        end as shoulder_width_px
    from body_samples
),

steps as (
    select
        visible_points.video_id,
        visible_points.person_id,
        visible_points.frame,
        visible_points.timestamp,
        visible_points.timestamp - lag(visible_points.timestamp) over samples as dt_s,
        (visible_points.shoulder_width_px + lag(visible_points.shoulder_width_px) over samples) / 2
            as scale_px,
        case
            when visible_points.left_wrist_visible and lag(visible_points.left_wrist_visible) over samples
                then sqrt(
                    (visible_points.left_wrist_x - lag(visible_points.left_wrist_x) over samples) ** 2
                    + (visible_points.left_wrist_y - lag(visible_points.left_wrist_y) over samples) ** 2
                )
        end as left_wrist_px,
        case
            when visible_points.right_wrist_visible and lag(visible_points.right_wrist_visible) over samples
                then sqrt(
                    (visible_points.right_wrist_x - lag(visible_points.right_wrist_x) over samples) ** 2
                    + (visible_points.right_wrist_y - lag(visible_points.right_wrist_y) over samples) ** 2
                )
        end as right_wrist_px
    from visible_points
    window samples as (
        partition by visible_points.video_id, visible_points.person_id
        order by visible_points.timestamp, visible_points.frame
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
            when steps.dt_s > 0 and steps.scale_px > 0
                then greatest(steps.left_wrist_px, steps.right_wrist_px) / steps.scale_px / steps.dt_s
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
