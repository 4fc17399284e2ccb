-- Conveyor on PostgreSQL, version 2: versioned JSON records (RecordStore), the state that
-- built-in handlers share across processes (webhook endpoints, circuit breakers).
-- COLLATE "C" so that the primary key's order is code-point order, the order list_records
-- promises on every engine, and listing a namespace reads the index without a sort.

CREATE TABLE conveyor_records (
    namespace  text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      jsonb NOT NULL,
    version    bigint NOT NULL CHECK (version >= 1),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, key)
);
