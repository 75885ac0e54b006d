-- A technician found satellite TV impossible at the address the customer lives at on the run
-- date (the profile keys the finding by address), so the suppression ends by itself when the
-- customer moves.
SELECT
    customer_id,
    'technician visit on ' || CAST(satellite_refused_on AS VARCHAR)
        || ' at address ' || CAST(address_id AS VARCHAR) || ': not_serviceable' AS detail
FROM customer_profile
WHERE satellite_not_serviceable_here
