-- grain: one row per video with at least one face row
-- keys: video_id
-- depends: frames
-- The primary face of a video is its person with the most frame rows (ties: the lowest person_id), over
-- all of the person's face tracks (person_id; the face track itself in stores written before person_id);
-- in a lesson video that is the teacher, the person in view most of the time. n_frames is its frame rows,
-- AUxx_r the mean of each AU intensity over them (one scan of frames gives both: the marts' largest input).
with

face_frames as (
    select * from frames
),

tracks as (
    select
        face_frames.video_id,
        coalesce(face_frames.person_id, face_frames.face_id) as person_id,
        count(*) as n_frames,
        avg(columns('^AU\d+_r$'))
    from face_frames
    group by face_frames.video_id, coalesce(face_frames.person_id, face_frames.face_id)
),

final as (
    select tracks.*
    from tracks
    qualify row_number() over (partition by tracks.video_id order by tracks.n_frames desc, tracks.person_id) = 1
)

select * from final
