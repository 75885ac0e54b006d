-- Valuable customers going quiet: over $high_value_threshold spent in the last 365 days, but no
-- purchase for more than 60 days.
SELECT
    customer_id,
    'Spent ' || CAST(CAST(ROUND(spend_365d) AS BIGINT) AS VARCHAR)
        || ' in the last 365 days but has not bought anything for '
        || CAST(days_since_last_purchase AS VARCHAR) || ' days' AS reason
FROM customer_profile
WHERE spend_365d > $high_value_threshold
  AND days_since_last_purchase > 60
