-- Tracing: the W3C trace context (traceparent, tracestate) of the request that wrote an
-- outbox row, so the relay (later, maybe in another process) parents its publish span on
-- that trace and puts traceparent into the Kafka message's headers. Nullable: rows written
-- by an older revision during a rollout, or outside any trace, have none.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;
