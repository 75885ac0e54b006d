-- Customers in their first 30 days.
SELECT
    customer_id,
    'Joined on ' || CAST(signup_date AS VARCHAR) || ', '
        || CAST(tenure_days AS VARCHAR) || ' days ago' AS reason
FROM customer_profile
WHERE tenure_days <= 30
