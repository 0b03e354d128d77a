"""The operator's side of the guest channel: SSH to an SSVM's agent on port 3922, keys, hashing
of action payloads, redaction of secrets, and a simulated guest SSH server for the dev cluster."""
