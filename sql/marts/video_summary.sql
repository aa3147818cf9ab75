-- grain: one row per video in the catalog
-- keys: video_id
-- depends: videos, primary_faces, emotion_windows, wrist_motion, gesture_samples, people
-- Expressions: the primary face's sampled frames covered by an emotion window, each counted once with the
-- label of the window whose centre is nearest: a window's n_owned (written by inference, the per-frame form
-- of the same rule is expression_frames; summing n_owned instead of joining every frame with its windows
-- keeps this mart near a bare aggregate over a large store, bench/marts.py). <class>_s = frames labelled
-- <class> × sample_s (duration_s / sampled_frames), expression_s = covered frames × sample_s
-- (<= duration_s), <class>_share = <class>_s / expression_s; expression_coverage = covered frames / the
-- primary track's frames. Predictions written before windows carried n_owned leave these null until
-- `lessonlens run` recomputes them. dominant_expression has the largest share (ties: alphabetical), ranked
-- on frame counts: a float sum's last bits depend on DuckDB's thread order, which made equal shares
-- tie-break at random. Mean AU intensities (AUxx_r) are over the primary person's face frames (primary_faces).
-- primary_tracks is materialized and gives both the AU means and which windows are the primary person's:
-- frames, the largest input, is scanned once (expression_windows would scan it again, bench/marts.py).
-- face_visible_s = frames_with_face / sampled_frames × duration_s. primary_person_key: the primary person's
-- person_key across the course's videos (people: only with `lessonlens run --link-people`; else null).
-- Gestures: the person with the most body samples (see wrist_motion for the definition);
-- body_s is the time covered by samples with a wrist speed, gesture_rate = gestures per minute of body_s,
-- moving_share = time with is_moving / body_s.
-- Gesture model (when gesture predictions exist, i.e. a teacher_gesture model was promoted): the primary
-- person's body samples covered by a gesture window (gesture_samples), expressive_gesture_share = samples
-- labelled expressive / covered samples, gesture_model = the predictions' model_name. body_measure names
-- the measure body_group is made from: 'gesture model <name>' or 'wrist-speed rule' (the fallback).
with

lesson_videos as (
    select * from videos
),

primary_tracks as materialized (
    select * from primary_faces
),

windows as (
    select * from emotion_windows
),

motion as (
    select * from wrist_motion
),

model_samples as (
    select * from gesture_samples
),

linked as (
    select * from people
),

label_time as (
    select
        windows.video_id,
        windows.label,
        sum(windows.n_owned) as n_frames
    from windows
    inner join primary_tracks
        on windows.video_id = primary_tracks.video_id
        and windows.person_id = primary_tracks.person_id
    where windows.label is not null
    group by windows.video_id, windows.label
),

expression_time as (
    select
        label_time.video_id,
        sum(label_time.n_frames) as expression_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'anger'), 0) as anger_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'disgust'), 0) as disgust_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'fear'), 0) as fear_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'happiness'), 0) as happiness_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'sadness'), 0) as sadness_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'surprise'), 0) as surprise_frames,
        coalesce(sum(label_time.n_frames) filter (where label_time.label = 'neutral'), 0) as neutral_frames,
        first(label_time.label order by label_time.n_frames desc, label_time.label) as dominant_expression
    from label_time
    where label_time.n_frames is not null
    group by label_time.video_id
),

expression_seconds as (
    select
        expression_time.*,
        lesson_videos.duration_s / nullif(lesson_videos.sampled_frames, 0) as sample_s
    from expression_time
    inner join lesson_videos
        on expression_time.video_id = lesson_videos.video_id
),

person_samples as (
    select
        motion.video_id,
        motion.person_id,
        count(*) as n_samples
    from motion
    group by motion.video_id, motion.person_id
),

primary_persons as (
    select
        person_samples.video_id,
        first(person_samples.person_id order by person_samples.n_samples desc, person_samples.person_id)
            as person_id
    from person_samples
    group by person_samples.video_id
),

model_gestures as (
    select
        model_samples.video_id,
        first(model_samples.model_name) as gesture_model,
        count(*) filter (where model_samples.label is not null) as gesture_samples,
        count(*) filter (where model_samples.is_expressive) as expressive_samples
    from model_samples
    inner join primary_persons
        on model_samples.video_id = primary_persons.video_id
        and model_samples.person_id = primary_persons.person_id
    group by model_samples.video_id
),

gestures as (
    select
        motion.video_id,
        coalesce(sum(motion.dt_s) filter (where motion.wrist_speed is not null), 0) as body_s,
        coalesce(sum(motion.dt_s) filter (where motion.is_moving), 0) as moving_s,
        count(*) filter (where motion.gesture_start) as gestures
    from motion
    inner join primary_persons
        on motion.video_id = primary_persons.video_id
        and motion.person_id = primary_persons.person_id
    group by motion.video_id
),

final as (
    select
        lesson_videos.video_id,
        lesson_videos.path,
        lesson_videos.status,
        lesson_videos.course,
        lesson_videos.session,
        lesson_videos.teacher,
        lesson_videos.role,
        lesson_videos.lesson_type,
        lesson_videos.duration_s,
        lesson_videos.face_rows,
        lesson_videos.body_rows,
        lesson_videos.frames_with_face / nullif(lesson_videos.sampled_frames, 0) * lesson_videos.duration_s
            as face_visible_s,
        primary_tracks.person_id as primary_person_id,
        linked.person_key as primary_person_key,
        expression_seconds.expression_frames * expression_seconds.sample_s as expression_s,
        expression_seconds.expression_frames / nullif(primary_tracks.n_frames, 0) as expression_coverage,
        expression_seconds.anger_frames * expression_seconds.sample_s as anger_s,
        expression_seconds.disgust_frames * expression_seconds.sample_s as disgust_s,
        expression_seconds.fear_frames * expression_seconds.sample_s as fear_s,
        expression_seconds.happiness_frames * expression_seconds.sample_s as happiness_s,
        expression_seconds.sadness_frames * expression_seconds.sample_s as sadness_s,
        expression_seconds.surprise_frames * expression_seconds.sample_s as surprise_s,
        expression_seconds.neutral_frames * expression_seconds.sample_s as neutral_s,
        expression_seconds.anger_frames / nullif(expression_seconds.expression_frames, 0) as anger_share,
        expression_seconds.disgust_frames / nullif(expression_seconds.expression_frames, 0) as disgust_share,
        expression_seconds.fear_frames / nullif(expression_seconds.expression_frames, 0) as fear_share,
        expression_seconds.happiness_frames / nullif(expression_seconds.expression_frames, 0) as happiness_share,
        expression_seconds.sadness_frames / nullif(expression_seconds.expression_frames, 0) as sadness_share,
        expression_seconds.surprise_frames / nullif(expression_seconds.expression_frames, 0) as surprise_share,
        expression_seconds.neutral_frames / nullif(expression_seconds.expression_frames, 0) as neutral_share,
        expression_seconds.dominant_expression,
        gestures.body_s,
        gestures.moving_s,
        gestures.gestures,
        gestures.gestures / nullif(gestures.body_s / 60, 0) as gesture_rate,
        gestures.moving_s / nullif(gestures.body_s, 0) as moving_share,
        model_gestures.gesture_model,
        model_gestures.gesture_samples,
        model_gestures.expressive_samples,
        model_gestures.expressive_samples / nullif(model_gestures.gesture_samples, 0) as expressive_gesture_share,
        case
            when model_gestures.gesture_samples > 0 then 'gesture model ' || model_gestures.gesture_model
            else 'wrist-speed rule'
        end as body_measure,
        primary_tracks.* exclude (video_id, person_id, n_frames)
    from lesson_videos
    left join primary_tracks
        on lesson_videos.video_id = primary_tracks.video_id
    left join expression_seconds
        on lesson_videos.video_id = expression_seconds.video_id
    left join gestures
        on lesson_videos.video_id = gestures.video_id
    left join model_gestures
        on lesson_videos.video_id = model_gestures.video_id
    left join linked
        on primary_tracks.video_id = linked.video_id
        and primary_tracks.person_id = linked.person_id
)

select * from final
