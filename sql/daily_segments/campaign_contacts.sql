-- Campaign messages and reactions per customer and offer over the 90 days up to the end of the
-- run date (offer NULL: those not tied to an offer). customer_features and the contact-cap and
-- unanswered-offer rules all read this one table, so these events are scanned once for the three.
SELECT
    customer_id,
    offer,
    SUM(CASE WHEN event_type IN ('email_send', 'sms_send')
        AND event_time >= CAST($run_date - 6 AS TIMESTAMP) THEN 1 ELSE 0 END) AS sends_7d,
    SUM(CASE WHEN event_type IN ('email_send', 'sms_send') THEN 1 ELSE 0 END) AS sends_90d,
    SUM(CASE WHEN event_type IN ('email_open', 'email_click', 'purchase') THEN 1 ELSE 0 END)
        AS responses_90d
FROM interactions
WHERE event_type IN ('email_send', 'sms_send', 'email_open', 'email_click', 'purchase')
  AND event_time < $run_date + INTERVAL '1 day'
  AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
  -- Lets the scan skip month partitions outside the 90 days.
  AND year * 100 + month >= date_part('year', $run_date - 89) * 100
      + date_part('month', $run_date - 89)
GROUP BY customer_id, offer
