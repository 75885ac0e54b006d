-- Behaviour per customer from interactions up to the end of the run date: recency, frequency and
-- monetary value over 30/90/365 days, e-mail engagement, service trouble, and how often the same
-- offer was sent without any response.
--
-- Windows count the run date itself: "30 days" is the run date and the 29 days before it, i.e.
-- events from midnight at the start of $run_date - 29 on. Recency (days since the last purchase
-- or visit) looks back max($lookback_days, 365) days and is NULL when nothing happened in that
-- time. Customers without any interaction in that time have no row; customer_profile fills in
-- zeros.
--
-- Events are compared with timestamps rather than cast to dates one by one: the scan can then
-- skip row groups and month partitions, and only one date per customer is computed.
WITH recent AS (
    SELECT customer_id, event_type, outcome, amount, event_time
    FROM interactions
    WHERE event_time < $run_date + INTERVAL '1 day'
      AND event_time >= CAST($run_date - (GREATEST($lookback_days, 365) - 1) AS TIMESTAMP)
      AND year * 100 + month BETWEEN
          date_part('year', $run_date - GREATEST($lookback_days, 365)) * 100
              + date_part('month', $run_date - GREATEST($lookback_days, 365))
          AND date_part('year', $run_date) * 100 + date_part('month', $run_date)
),

-- The most sends of one offer in 90 days without any open, click or purchase of it.
unanswered AS (
    SELECT
        customer_id,
        MAX(CASE WHEN responses_90d = 0 THEN sends_90d ELSE 0 END)
            AS unanswered_sends_same_offer_max
    FROM campaign_contacts
    WHERE offer IS NOT NULL
    GROUP BY customer_id
),

activity AS (
    SELECT
        customer_id,
        MAX(CASE WHEN event_type = 'purchase' THEN event_time END) AS last_purchase,
        SUM(CASE WHEN event_type = 'purchase' AND event_time >= CAST($run_date - 29 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS purchases_30d,
        SUM(CASE WHEN event_type = 'purchase' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS purchases_90d,
        SUM(CASE WHEN event_type = 'purchase' AND event_time >= CAST($run_date - 364 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS purchases_365d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase'
            AND event_time >= CAST($run_date - 29 AS TIMESTAMP) THEN amount END), 0), 2) AS spend_30d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase'
            AND event_time >= CAST($run_date - 89 AS TIMESTAMP) THEN amount END), 0), 2) AS spend_90d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase'
            AND event_time >= CAST($run_date - 364 AS TIMESTAMP) THEN amount END), 0), 2)
            AS spend_365d,
        SUM(CASE WHEN event_type = 'email_send' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS email_sends_90d,
        SUM(CASE WHEN event_type = 'email_open' AND event_time >= CAST($run_date - 29 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS email_opens_30d,
        SUM(CASE WHEN event_type = 'email_open' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS email_opens_90d,
        SUM(CASE WHEN event_type = 'email_click' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS email_clicks_90d,
        SUM(CASE WHEN event_type = 'complaint' AND event_time >= CAST($run_date - 29 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS complaints_30d,
        SUM(CASE WHEN event_type = 'complaint' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS complaints_90d,
        SUM(CASE WHEN event_type = 'support_call' AND event_time >= CAST($run_date - 89 AS TIMESTAMP)
            THEN 1 ELSE 0 END) AS support_calls_90d,
        SUM(CASE WHEN event_type = 'support_call' AND outcome = 'unresolved'
            AND event_time >= CAST($run_date - 29 AS TIMESTAMP) THEN 1 ELSE 0 END)
            AS unresolved_calls_30d,
        MAX(CASE WHEN event_type IN ('web_visit', 'app_visit') THEN event_time END) AS last_visit,
        SUM(CASE WHEN event_type IN ('web_visit', 'app_visit')
            AND event_time >= CAST($run_date - 29 AS TIMESTAMP) THEN 1 ELSE 0 END) AS visits_30d
    FROM recent
    GROUP BY customer_id
)

SELECT
    activity.customer_id,
    $run_date - CAST(activity.last_purchase AS DATE) AS days_since_last_purchase,
    activity.purchases_30d,
    activity.purchases_90d,
    activity.purchases_365d,
    activity.spend_30d,
    activity.spend_90d,
    activity.spend_365d,
    activity.email_sends_90d,
    activity.email_opens_30d,
    activity.email_opens_90d,
    activity.email_clicks_90d,
    activity.complaints_30d,
    activity.complaints_90d,
    activity.support_calls_90d,
    activity.unresolved_calls_30d,
    $run_date - CAST(activity.last_visit AS DATE) AS days_since_last_visit,
    activity.visits_30d,
    COALESCE(unanswered.unanswered_sends_same_offer_max, 0) AS unanswered_sends_same_offer_max
FROM activity
LEFT JOIN unanswered ON unanswered.customer_id = activity.customer_id
