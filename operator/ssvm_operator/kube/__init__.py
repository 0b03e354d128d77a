"""The only code that talks to the Kubernetes API server: one client, one status writer, one record
of writes the watch has not shown yet, every Event reason, and the wake-up/sleep helper of the loops."""
