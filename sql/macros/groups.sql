-- The two factors of paper 1's 2x2 design, one definition each (used by session_analysis and teacher_analysis);
-- body_group has two measures: the wrist-speed rule (gesture_rate) and, where a gesture model predicted, the
-- expressive-gesture share (body_group_from_share).
-- Null when the measure is missing. Thresholds are DuckDB variables (tasks/analyse/warehouse.py THRESHOLDS).
create or replace macro facial_group(happiness_share) as
    case
        when happiness_share >= getvariable('positive_happiness_share') then 'positive'
        when happiness_share is not null then 'neutral'
    end;

create or replace macro body_group(gesture_rate) as
    case
        when gesture_rate >= getvariable('expressive_gesture_rate') then 'expressive'
        when gesture_rate is not null then 'still'
    end;

-- Gesture model (task 'gesture'): McNeill's gesture types are expressive (models.rules.EXPRESSIVE_GESTURES);
-- writing and rest are not. Null for a window without a label.
create or replace macro is_expressive_gesture(label) as
    case when label is not null then label in ('deictic', 'iconic', 'metaphoric', 'beat') end;

create or replace macro body_group_from_share(expressive_share) as
    case
        when expressive_share >= getvariable('expressive_gesture_share') then 'expressive'
        when expressive_share is not null then 'still'
    end;
