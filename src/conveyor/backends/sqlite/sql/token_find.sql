SELECT id, name, scopes, secret_hash, created_at, revoked_at FROM conveyor_tokens
WHERE secret_hash = ?
