"""Plain values shared by the controllers and the backends: VM requests and observations, names,
NIC layout, boot arguments, the spec hash, views of the custom objects, conditions, redaction.
Nothing here talks to the API server or imports kopf."""
