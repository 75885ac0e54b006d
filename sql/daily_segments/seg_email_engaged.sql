-- Customers who read our e-mails and may receive them: a click in the last 90 days or at least
-- two opens in the last 30 days.
SELECT
    customer_id,
    CASE
        WHEN email_clicks_90d > 0
            THEN 'Clicked ' || CAST(email_clicks_90d AS VARCHAR)
                || ' e-mail(s) in the last 90 days'
        ELSE 'Opened ' || CAST(email_opens_30d AS VARCHAR) || ' e-mails in the last 30 days'
    END AS reason
FROM customer_profile
WHERE consent_email
  AND (email_clicks_90d > 0 OR email_opens_30d >= 2)
