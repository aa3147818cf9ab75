-- grain: one row per video with at least one face row
-- keys: video_id
-- depends: frames
-- The primary face of a video is its face track with the most frame rows (ties: the lowest face_id);
-- in a lesson video that is the teacher, the person in view most of the time.
with

face_frames as (
    select * from frames
),

track_sizes as (
    select
        face_frames.video_id,
        face_frames.face_id,
        count(*) as n_frames
    from face_frames
    group by face_frames.video_id, face_frames.face_id
),

final as (
    select
        track_sizes.video_id,
        first(track_sizes.face_id order by track_sizes.n_frames desc, track_sizes.face_id) as face_id,
        max(track_sizes.n_frames) as n_frames
    from track_sizes
    group by track_sizes.video_id
)

select * from final
