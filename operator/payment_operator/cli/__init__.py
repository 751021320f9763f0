"""``kubectl paydeck``: a kubectl plugin to watch and steer PaymentService rollouts.

:mod:`.render` (status in, text out) and :mod:`.commands` (which command makes sense now,
and the status patch that gives it) are pure; :mod:`.plugin` holds the command line and the
API calls.  Commands go through ``status.command`` only, like the Argo CD actions, and never
touch ``spec``.  Nothing here imports Kopf.
"""
