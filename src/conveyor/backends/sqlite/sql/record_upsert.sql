INSERT INTO conveyor_records (namespace, key, value, version, updated_at)
VALUES (:namespace, :key, :value, :version, :now)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value,
    version = excluded.version,
    updated_at = excluded.updated_at
