"""The guest channel: SSH (paramiko) to an SSVM's agent on port 3922 with a pinned host key, its
errors and key handling."""
