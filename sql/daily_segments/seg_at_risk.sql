-- Customers with recent trouble: a complaint or an unresolved support call in the last 30 days.
SELECT
    customer_id,
    concat_ws(
        ' and ',
        CASE
            WHEN complaints_30d > 0
                THEN CAST(complaints_30d AS VARCHAR) || ' complaint(s) in the last 30 days'
        END,
        CASE
            WHEN unresolved_calls_30d > 0
                THEN CAST(unresolved_calls_30d AS VARCHAR)
                    || ' unresolved support call(s) in the last 30 days'
        END
    ) AS reason
FROM customer_profile
WHERE complaints_30d > 0
   OR unresolved_calls_30d > 0
