"""The SSVM guest agent: `ssvm-agent <action>`, JSON on stdin, JSON on stdout.

Standard library only: it runs inside the SSVM guest, shipped there as a single zipapp by
cloud-init (see `pack.py`). Nothing here may import the rest of `ssvm_operator`.
"""
