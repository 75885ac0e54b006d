-- Customers who already received more than $max_contacts_per_week campaign messages in the
-- seven days up to the run date.
SELECT
    customer_id,
    CAST(COUNT(*) AS VARCHAR) || ' campaign messages in the 7 days to '
        || CAST($run_date AS VARCHAR) AS detail
FROM interactions
WHERE event_type IN ('email_send', 'sms_send')
  AND event_time >= $run_date - INTERVAL '6 days'
  AND event_time < $run_date + INTERVAL '1 day'
  AND year * 100 + month >= date_part('year', $run_date - INTERVAL '6 days') * 100
      + date_part('month', $run_date - INTERVAL '6 days')
GROUP BY customer_id
HAVING COUNT(*) > $max_contacts_per_week
