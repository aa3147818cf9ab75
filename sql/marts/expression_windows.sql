-- grain: one row per video × face track × window of the emotion predictions (one model per video)
-- keys: video_id, face_id, window_index
-- person_id: the person of the track (the track itself for predictions written before person_id);
-- is_primary_face: the window is of the video's primary person (primary_faces).
-- depends: emotion_windows, videos, primary_faces
-- The windows of each video's emotion model (emotion_windows: how the stream and model are chosen), whether their person is
-- the video's primary person, and the video's metadata.
with

windows as (
    select * from emotion_windows
),

lesson_videos as (
    select * from videos
),

primary_tracks as (
    select * from primary_faces
),

final as (
    select
        windows.video_id,
        windows.face_id,
        windows.person_id,
        windows.window_index,
        windows.start_time,
        windows.end_time,
        windows.duration_s,
        windows.n_frames,
        windows.n_owned,
        coalesce(windows.person_id = primary_tracks.person_id, false) as is_primary_face,
        windows.emotion_stream,
        windows.model_name,
        windows.model_version,
        windows.label,
        windows.confidence,
        windows.p_anger,
        windows.p_disgust,
        windows.p_fear,
        windows.p_happiness,
        windows.p_sadness,
        windows.p_surprise,
        windows.p_neutral,
        lesson_videos.path,
        lesson_videos.course,
        lesson_videos.session,
        lesson_videos.teacher,
        lesson_videos.role,
        lesson_videos.lesson_type
    from windows
    inner join lesson_videos
        on windows.video_id = lesson_videos.video_id
    left join primary_tracks
        on windows.video_id = primary_tracks.video_id
)

select * from final
