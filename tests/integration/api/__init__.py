"""Integration tests of the PaymentService CRD against a real API server."""
