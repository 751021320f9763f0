"""Paydeck payment runtime: the payment service the operator deploys."""
