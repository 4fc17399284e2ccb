SELECT * FROM api_tokens ORDER BY created_at, id
