-- Behaviour per customer from interactions up to the end of the run date: recency, frequency and
-- monetary value over 30/90/365 days, e-mail engagement, service trouble, and how often the same
-- offer was sent without any response.
--
-- Windows count the run date itself: "30 days" is the run date and the 29 days before it
-- (days_ago 0..29). Recency (days since the last purchase or visit) looks back
-- max($lookback_days, 365) days and is NULL when nothing happened in that time.
-- Customers without any interaction in that time have no row; customer_profile fills in zeros.
WITH recent AS (
    SELECT
        customer_id,
        event_type,
        outcome,
        offer,
        amount,
        $run_date - CAST(event_time AS DATE) AS days_ago
    FROM interactions
    WHERE event_time < $run_date + INTERVAL '1 day'
      AND CAST(event_time AS DATE) > $run_date - GREATEST($lookback_days, 365)
      -- Lets the scan skip month partitions outside the look-back.
      AND year * 100 + month BETWEEN
          date_part('year', $run_date - GREATEST($lookback_days, 365)) * 100
              + date_part('month', $run_date - GREATEST($lookback_days, 365))
          AND date_part('year', $run_date) * 100 + date_part('month', $run_date)
),

-- Campaign messages per offer over 90 days, and whether the customer reacted to that offer at all
-- (opened, clicked or bought it).
offer_response AS (
    SELECT
        customer_id,
        offer,
        SUM(CASE WHEN event_type IN ('email_send', 'sms_send') THEN 1 ELSE 0 END) AS sends,
        SUM(CASE WHEN event_type IN ('email_open', 'email_click', 'purchase') THEN 1 ELSE 0 END)
            AS responses
    FROM recent
    WHERE offer IS NOT NULL
      AND days_ago < 90
    GROUP BY customer_id, offer
),

unanswered AS (
    SELECT
        customer_id,
        MAX(CASE WHEN responses = 0 THEN sends ELSE 0 END) AS unanswered_sends_same_offer_max
    FROM offer_response
    GROUP BY customer_id
),

activity AS (
    SELECT
        customer_id,
        MIN(CASE WHEN event_type = 'purchase' THEN days_ago END) AS days_since_last_purchase,
        SUM(CASE WHEN event_type = 'purchase' AND days_ago < 30 THEN 1 ELSE 0 END) AS purchases_30d,
        SUM(CASE WHEN event_type = 'purchase' AND days_ago < 90 THEN 1 ELSE 0 END) AS purchases_90d,
        SUM(CASE WHEN event_type = 'purchase' AND days_ago < 365 THEN 1 ELSE 0 END)
            AS purchases_365d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase' AND days_ago < 30 THEN amount END), 0), 2)
            AS spend_30d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase' AND days_ago < 90 THEN amount END), 0), 2)
            AS spend_90d,
        ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase' AND days_ago < 365 THEN amount END), 0), 2)
            AS spend_365d,
        SUM(CASE WHEN event_type = 'email_send' AND days_ago < 90 THEN 1 ELSE 0 END)
            AS email_sends_90d,
        SUM(CASE WHEN event_type = 'email_open' AND days_ago < 30 THEN 1 ELSE 0 END)
            AS email_opens_30d,
        SUM(CASE WHEN event_type = 'email_open' AND days_ago < 90 THEN 1 ELSE 0 END)
            AS email_opens_90d,
        SUM(CASE WHEN event_type = 'email_click' AND days_ago < 90 THEN 1 ELSE 0 END)
            AS email_clicks_90d,
        SUM(CASE WHEN event_type = 'complaint' AND days_ago < 30 THEN 1 ELSE 0 END)
            AS complaints_30d,
        SUM(CASE WHEN event_type = 'complaint' AND days_ago < 90 THEN 1 ELSE 0 END)
            AS complaints_90d,
        SUM(CASE WHEN event_type = 'support_call' AND days_ago < 90 THEN 1 ELSE 0 END)
            AS support_calls_90d,
        SUM(
            CASE WHEN event_type = 'support_call' AND outcome = 'unresolved' AND days_ago < 30
                THEN 1 ELSE 0 END
        ) AS unresolved_calls_30d,
        MIN(CASE WHEN event_type IN ('web_visit', 'app_visit') THEN days_ago END)
            AS days_since_last_visit,
        SUM(CASE WHEN event_type IN ('web_visit', 'app_visit') AND days_ago < 30 THEN 1 ELSE 0 END)
            AS visits_30d
    FROM recent
    GROUP BY customer_id
)

SELECT
    activity.*,
    COALESCE(unanswered.unanswered_sends_same_offer_max, 0) AS unanswered_sends_same_offer_max
FROM activity
LEFT JOIN unanswered ON unanswered.customer_id = activity.customer_id
