INSERT INTO api_tokens (id, name, scopes, secret_hash, created_at, revoked_at)
VALUES (%(id)s, %(name)s, %(scopes)s::text[], %(secret_hash)s, %(created_at)s, %(revoked_at)s)
