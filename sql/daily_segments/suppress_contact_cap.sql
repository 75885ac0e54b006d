-- Customers who already received more than $max_contacts_per_week campaign messages in the
-- seven days up to the run date.
SELECT
    customer_id,
    CAST(SUM(sends_7d) AS VARCHAR) || ' campaign messages in the 7 days to '
        || CAST($run_date AS VARCHAR) AS detail
FROM campaign_contacts
GROUP BY customer_id
HAVING SUM(sends_7d) > $max_contacts_per_week
