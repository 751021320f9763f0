"""Unit tests of the PaymentService API: models, CEL mirrors, the CRD generator."""
