"""One folder per controller (zone, ssvm, guest, keys): pure planners beside a thin kopf module.
`registration.py` is the only place that wires the controllers' kopf modules together."""
