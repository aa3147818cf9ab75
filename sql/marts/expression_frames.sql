-- grain: one row per video × face track × sampled frame of that track covered by an emotion window
-- keys: video_id, face_id, frame
-- depends: frames, expression_windows, videos
-- Time accounting without double counting: windows overlap (16 samples every 8), so summing window
-- durations counts most of the time twice. Instead each sampled frame of a face track is counted once and
-- takes the label of ONE window covering it (start_time <= timestamp <= end_time): the window whose centre
-- ((start_time + end_time) / 2) is nearest to the frame's timestamp; on a tie, the later window (the one
-- with the larger start_time, i.e. windows read as half-open at their end). A frame covered by no window
-- (e.g. the last samples of a track after the last complete window) has no row here.
-- sample_s is the time one sampled frame stands for: duration_s / sampled_frames of its video, so
-- seconds = frames × sample_s can never exceed the video's duration.
with

face_frames as (
    select * from frames
),

windows as (
    select * from expression_windows
),

lesson_videos as (
    select * from videos
),

covering as (
    select
        face_frames.video_id,
        face_frames.face_id,
        face_frames.frame,
        face_frames.timestamp,
        windows.window_index,
        windows.label,
        windows.is_primary_face,
        row_number() over (
            partition by face_frames.video_id, face_frames.face_id, face_frames.frame
            order by
                abs(face_frames.timestamp - (windows.start_time + windows.end_time) / 2),
                windows.start_time desc
        ) as nearest
    from face_frames
    inner join windows
        on face_frames.video_id = windows.video_id
        and face_frames.face_id = windows.face_id
        and face_frames.timestamp between windows.start_time and windows.end_time
),

final as (
    select
        covering.video_id,
        covering.face_id,
        covering.frame,
        covering.timestamp,
        covering.window_index,
        covering.label,
        covering.is_primary_face,
        lesson_videos.duration_s / nullif(lesson_videos.sampled_frames, 0) as sample_s
    from covering
    inner join lesson_videos
        on covering.video_id = lesson_videos.video_id
    where covering.nearest = 1
)

select * from final
