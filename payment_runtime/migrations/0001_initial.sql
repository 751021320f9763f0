-- Payments, refunds, idempotency keys, the transactional outbox and webhook dedupe.
CREATE TABLE payments (
    id                        uuid PRIMARY KEY,
    amount_minor              bigint NOT NULL CHECK (amount_minor > 0),
    currency                  char(3) NOT NULL,
    customer_id               text NOT NULL,
    payment_method            text NOT NULL,
    description               text,
    status                    text NOT NULL,
    amount_refunded           bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    stripe_payment_intent_id  text UNIQUE,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_refunded <= amount_minor)
);

CREATE TABLE refunds (
    id                uuid PRIMARY KEY,
    payment_id        uuid NOT NULL REFERENCES payments (id),
    amount_minor      bigint NOT NULL CHECK (amount_minor > 0),
    status            text NOT NULL,
    stripe_refund_id  text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment_id ON refunds (payment_id);

CREATE TABLE idempotency_keys (
    id                   bigserial PRIMARY KEY,
    scope                text NOT NULL,
    key                  text NOT NULL,
    request_method       text NOT NULL,
    request_path         text NOT NULL,
    request_fingerprint  text NOT NULL,
    recovery_point       text NOT NULL,
    resource_id          uuid,
    locked_at            timestamptz,
    response_code        integer,
    response_body        jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    last_run_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    topic         text NOT NULL,
    message_key   text NOT NULL,
    event_type    text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE webhook_events (
    event_id      text PRIMARY KEY,
    event_type    text NOT NULL,
    verdict       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
