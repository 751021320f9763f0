"""The canary rollout: pure decisions about steps and their analysis (no I/O, no clock)."""
