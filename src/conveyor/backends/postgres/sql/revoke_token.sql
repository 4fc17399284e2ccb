UPDATE api_tokens SET revoked_at = coalesce(%(now)s::timestamptz, clock_timestamp())
 WHERE id = %(id)s AND revoked_at IS NULL
RETURNING id
