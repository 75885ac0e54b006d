-- Where each customer lives at the end of the run date: the latest address they moved into on or
-- before it, with what can be installed there. Customers whose first address starts after the
-- run date (they had not joined yet) have no row.
SELECT
    customer_id,
    address_id,
    moved_in_on,
    street,
    city,
    postcode,
    region,
    dwelling_type,
    fiber_available,
    satellite_line_of_sight
FROM (
    SELECT
        customer_id,
        address_id,
        CAST(moved_in_on AS DATE) AS moved_in_on,
        street,
        city,
        postcode,
        region,
        dwelling_type,
        fiber_available,
        satellite_line_of_sight,
        ROW_NUMBER() OVER (
            PARTITION BY customer_id
            ORDER BY CAST(moved_in_on AS DATE) DESC, address_id DESC
        ) AS newest_first
    FROM address_changes
    WHERE CAST(moved_in_on AS DATE) <= $run_date
) AS addresses
WHERE newest_first = 1
