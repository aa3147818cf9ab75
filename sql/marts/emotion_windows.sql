-- grain: one row per video × face track × window of the emotion predictions (one model per video)
-- keys: video_id, face_id, window_index
-- depends: predictions
-- Stream: the task named by the variable emotion_stream ('emotion': a promoted model or face-api.js's
-- expression net, the default; 'emotion_rules': the AU rules), said in the emotion_stream column.
-- Model: per video, trained models come before the AU-rule baseline (model_name containing
-- 'rule baseline'), then the greatest model_version (text order); only that model's windows are kept.
-- person_id: the person of the track (the track itself for predictions written before person_id).
-- The windows alone, without the primary person or the video's metadata (expression_windows adds them):
-- video_summary joins them with its own primary_faces, so that one query scans frames once (bench/marts.py).
with

emotion_predictions as (
    select * from predictions where task = getvariable('emotion_stream')
),

ranked_models as (
    select
        emotion_predictions.video_id,
        emotion_predictions.model_version,
        emotion_predictions.model_name,
        row_number() over (
            partition by emotion_predictions.video_id
            order by
                emotion_predictions.model_name ilike '%rule baseline%',
                emotion_predictions.model_version desc
        ) as model_rank
    from emotion_predictions
    group by emotion_predictions.video_id, emotion_predictions.model_version, emotion_predictions.model_name
),

final as (
    select
        emotion_predictions.video_id,
        emotion_predictions.face_id,
        coalesce(emotion_predictions.person_id, emotion_predictions.face_id) as person_id,
        emotion_predictions.window_index,
        emotion_predictions.start_time,
        emotion_predictions.end_time,
        emotion_predictions.end_time - emotion_predictions.start_time as duration_s,
        emotion_predictions.n_frames,
        emotion_predictions.n_owned,
        emotion_predictions.task as emotion_stream,
        emotion_predictions.model_name,
        emotion_predictions.model_version,
        emotion_predictions.label,
        emotion_predictions.confidence,
        emotion_predictions.p_anger,
        emotion_predictions.p_disgust,
        emotion_predictions.p_fear,
        emotion_predictions.p_happiness,
        emotion_predictions.p_sadness,
        emotion_predictions.p_surprise,
        emotion_predictions.p_neutral
    from emotion_predictions
    inner join ranked_models
        on emotion_predictions.video_id = ranked_models.video_id
        and emotion_predictions.model_version = ranked_models.model_version
        and emotion_predictions.model_name = ranked_models.model_name
        and ranked_models.model_rank = 1
)

select * from final
