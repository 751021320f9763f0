"""Paydeck operator: reconciles PaymentService resources into running payment services."""
