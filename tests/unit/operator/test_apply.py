"""The write budget stops a fight with another controller instead of writing forever."""

import pytest
from payment_operator.kube.apply import FightingError, UpdateBudget

pytestmark = pytest.mark.unit


def test_budget_allows_the_limit_then_refuses_then_recovers():
    budget = UpdateBudget(limit=3, window=60)
    for t in (0, 1, 2):
        budget.spend("ns/Deployment/x", t)
    with pytest.raises(FightingError, match="updated 3 times"):
        budget.spend("ns/Deployment/x", 3)
    budget.spend("ns/Deployment/other", 3)  # budgets are per child
    budget.spend("ns/Deployment/x", 61.5)  # the oldest updates left the window
