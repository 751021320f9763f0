-- Retention: the purge of old webhook event ids scans by arrival time
-- (idempotency_keys already has idempotency_keys_created_at).
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
