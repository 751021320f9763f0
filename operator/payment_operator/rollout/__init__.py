"""The canary engine: pure decisions about rollouts, steps and their analysis (no I/O, no
clock reads, no Kopf)."""
