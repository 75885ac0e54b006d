-- A technician found satellite TV impossible at the address the customer lives at on the run
-- date. Joined to the current address, the suppression ends by itself when the customer moves.
SELECT
    v.customer_id,
    'technician visit on ' || CAST(CAST(v.event_time AS DATE) AS VARCHAR)
        || ' at address ' || CAST(v.address_id AS VARCHAR) || ': ' || v.outcome AS detail
FROM interactions AS v
JOIN current_address AS a
    ON a.customer_id = v.customer_id AND a.address_id = v.address_id
WHERE v.event_type = 'technician_visit'
  AND v.product = 'satellite_tv'
  AND v.outcome = 'not_serviceable'
  AND v.event_time < $run_date + INTERVAL '1 day'
