"""Pure payment domain: money, the payment state machine, idempotency and webhook rules.

Nothing here performs I/O; the adapters and the API layer call into these modules.
"""
