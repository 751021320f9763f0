"""Adapters to the outside world: PostgreSQL, Stripe, Kafka and secret stores."""
