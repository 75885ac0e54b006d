-- One row per customer who had joined by the run date: who they are, where they live now, how
-- they behave and what they hold. Everything segments, suppressions and offers decide on.
--
-- Behaviour comes from the feature tables customer_features, campaign_contacts and
-- satellite_refusals, declared in the pipeline and kept up to date day by day: no query here
-- scans the interactions. Recency (days since the last purchase or visit) looks back
-- max($lookback_days, 365) days and is NULL when nothing happened in that time.
WITH held_products AS (
    -- A product is held on the run date if it started on or before it and had not ended by then.
    -- One row per product held, so the count below needs no COUNT(DISTINCT), whose per-group hash
    -- sets cost kilobytes per customer.
    SELECT DISTINCT customer_id, product
    FROM holdings
    WHERE CAST(started_on AS DATE) <= $run_date
      AND (ended_on IS NULL OR CAST(ended_on AS DATE) > $run_date)
),

held AS (
    SELECT
        customer_id,
        BOOL_OR(product IN ('internet_dsl', 'internet_fiber')) AS owns_internet,
        BOOL_OR(product = 'internet_dsl') AS owns_dsl,
        BOOL_OR(product = 'internet_fiber') AS owns_fiber,
        BOOL_OR(product = 'landline') AS owns_landline,
        BOOL_OR(product = 'mobile') AS owns_mobile,
        BOOL_OR(product = 'satellite_tv') AS owns_satellite_tv,
        BOOL_OR(product = 'tv_streaming') AS owns_tv_streaming,
        COUNT(*) AS products_held
    FROM held_products
    GROUP BY customer_id
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
)

SELECT
    c.customer_id,
    c.first_name,
    c.last_name,
    c.email,
    c.phone,
    -- Activation identifiers: normalized and hashed the way ad platforms expect.
    sha256_email(c.email) AS email_sha256,
    normalize_phone(c.phone, c.country) AS phone_e164,
    sha256_phone_e164(c.phone, c.country) AS phone_sha256,
    c.country,
    c.region,
    c.preferred_channel,
    COALESCE(c.consent_email, false) AS consent_email,
    COALESCE(c.consent_sms, false) AS consent_sms,
    COALESCE(c.consent_push, false) AS consent_push,
    COALESCE(c.consent_mail, false) AS consent_mail,
    CAST(c.signup_date AS DATE) AS signup_date,
    $run_date - CAST(c.signup_date AS DATE) AS tenure_days,

    a.address_id,
    a.city,
    a.postcode,
    a.dwelling_type,
    a.fiber_available,
    a.satellite_line_of_sight,
    a.moved_in_on,

    CASE WHEN f.last_purchase >= CAST($run_date - (GREATEST($lookback_days, 365) - 1) AS TIMESTAMP)
        THEN $run_date - CAST(f.last_purchase AS DATE) END AS days_since_last_purchase,
    COALESCE(f.purchases_30d, 0) AS purchases_30d,
    COALESCE(f.purchases_90d, 0) AS purchases_90d,
    COALESCE(f.purchases_365d, 0) AS purchases_365d,
    COALESCE(f.spend_30d, 0) AS spend_30d,
    COALESCE(f.spend_90d, 0) AS spend_90d,
    COALESCE(f.spend_365d, 0) AS spend_365d,
    COALESCE(f.email_sends_90d, 0) AS email_sends_90d,
    COALESCE(f.email_opens_30d, 0) AS email_opens_30d,
    COALESCE(f.email_opens_90d, 0) AS email_opens_90d,
    COALESCE(f.email_clicks_90d, 0) AS email_clicks_90d,
    COALESCE(f.complaints_30d, 0) AS complaints_30d,
    COALESCE(f.complaints_90d, 0) AS complaints_90d,
    COALESCE(f.support_calls_90d, 0) AS support_calls_90d,
    COALESCE(f.unresolved_calls_30d, 0) AS unresolved_calls_30d,
    CASE WHEN f.last_visit >= CAST($run_date - (GREATEST($lookback_days, 365) - 1) AS TIMESTAMP)
        THEN $run_date - CAST(f.last_visit AS DATE) END AS days_since_last_visit,
    COALESCE(f.visits_30d, 0) AS visits_30d,
    COALESCE(u.unanswered_sends_same_offer_max, 0) AS unanswered_sends_same_offer_max,

    COALESCE(h.owns_internet, false) AS owns_internet,
    COALESCE(h.owns_dsl, false) AS owns_dsl,
    COALESCE(h.owns_fiber, false) AS owns_fiber,
    COALESCE(h.owns_landline, false) AS owns_landline,
    COALESCE(h.owns_mobile, false) AS owns_mobile,
    COALESCE(h.owns_satellite_tv, false) AS owns_satellite_tv,
    COALESCE(h.owns_tv_streaming, false) AS owns_tv_streaming,
    COALESCE(h.products_held, 0) AS products_held,

    s.address_id IS NOT NULL AS satellite_not_serviceable_here,
    CAST(s.first_refused AS DATE) AS satellite_refused_on
FROM customers AS c
LEFT JOIN current_address AS a ON a.customer_id = c.customer_id
LEFT JOIN customer_features AS f ON f.customer_id = c.customer_id
LEFT JOIN unanswered AS u ON u.customer_id = c.customer_id
LEFT JOIN held AS h ON h.customer_id = c.customer_id
LEFT JOIN satellite_refusals AS s
    ON s.customer_id = c.customer_id AND s.address_id = a.address_id
WHERE CAST(c.signup_date AS DATE) <= $run_date
