-- Fibre is available where the customer lives now, and they do not have it: they are on DSL or
-- have no internet with us.
SELECT
    customer_id,
    CASE
        WHEN owns_dsl THEN 'On DSL at an address where fibre is available'
        ELSE 'No internet with us, and fibre is available at their address'
    END AS reason
FROM customer_profile
WHERE fiber_available
  AND NOT owns_fiber
