"""Guest operations (issue 6, operator side): keys, the SSH start gate, the ordered guest actions,
the coalesced firewall mesh and health checks, independent of kopf (handlers/guest.py plugs them in)."""
