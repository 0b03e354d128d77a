"""Subcommands of the ssvm-operator CLI, one module each."""
