-- The best customers: buy often, bought recently, and spend a lot.
SELECT
    customer_id,
    CAST(purchases_90d AS VARCHAR) || ' purchases in the last 90 days, the latest '
        || CAST(days_since_last_purchase AS VARCHAR) || ' days ago, and '
        || CAST(CAST(ROUND(spend_365d) AS BIGINT) AS VARCHAR) || ' spent in the last 365 days'
        AS reason
FROM customer_profile
WHERE purchases_90d >= 3
  AND days_since_last_purchase <= 30
  AND spend_365d > $high_value_threshold
