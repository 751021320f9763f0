"""The canary engine: pure decisions about rollouts (no I/O, no clock reads, no Kopf)."""
