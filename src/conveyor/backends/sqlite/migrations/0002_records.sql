-- Versioned JSON records with compare-and-set (the RecordStore seam): state that built-in
-- handlers share across processes (webhook endpoints, circuit breakers).

CREATE TABLE conveyor_records (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
