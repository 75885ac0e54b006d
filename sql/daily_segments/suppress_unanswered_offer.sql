-- An offer sent $max_unanswered_sends times or more in 90 days without a single open, click
-- or purchase: stop repeating it to that customer (other offers stay possible).
SELECT
    customer_id,
    offer,
    CAST(sends_90d AS VARCHAR) || ' unanswered sends of ' || offer || ' in 90 days' AS detail
FROM campaign_contacts
WHERE offer IS NOT NULL
  AND responses_90d = 0
  AND sends_90d >= $max_unanswered_sends
