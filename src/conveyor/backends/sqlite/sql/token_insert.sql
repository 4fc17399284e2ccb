INSERT INTO conveyor_tokens (id, name, scopes, secret_hash, created_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?)
