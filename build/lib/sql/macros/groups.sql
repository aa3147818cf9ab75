-- The two factors of paper 1's 2x2 design, one definition each (used by session_analysis and teacher_analysis).
-- Null when the measure is missing. Thresholds are DuckDB variables (tasks/warehouse.py THRESHOLDS).
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
