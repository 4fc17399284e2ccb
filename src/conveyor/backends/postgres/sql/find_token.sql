SELECT * FROM api_tokens WHERE secret_hash = %(secret_hash)s
