-- An offer sent $max_unanswered_sends times or more in 90 days without a single open, click
-- or purchase: stop repeating it to that customer (other offers stay possible).
SELECT
    customer_id,
    offer,
    CAST(SUM(CASE WHEN event_type IN ('email_send', 'sms_send') THEN 1 ELSE 0 END) AS VARCHAR)
        || ' unanswered sends of ' || offer || ' in 90 days' AS detail
FROM interactions
WHERE offer IS NOT NULL
  AND event_time >= $run_date - INTERVAL '89 days'
  AND event_time < $run_date + INTERVAL '1 day'
  -- Lets the scan skip month partitions outside the 90 days.
  AND year * 100 + month >= date_part('year', $run_date - INTERVAL '89 days') * 100
      + date_part('month', $run_date - INTERVAL '89 days')
GROUP BY customer_id, offer
HAVING SUM(CASE WHEN event_type IN ('email_open', 'email_click', 'purchase') THEN 1 ELSE 0 END) = 0
   AND SUM(CASE WHEN event_type IN ('email_send', 'sms_send') THEN 1 ELSE 0 END) >= $max_unanswered_sends
