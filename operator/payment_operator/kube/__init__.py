"""The only layer that talks to the Kubernetes API: apply, read, prune, status, discovery."""
