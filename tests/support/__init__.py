"""Test doubles shared by the tests and the benchmarks: a fake guest channel, an in-memory cluster
for guest operations, in-memory Secrets, and the guest key-rotation helper."""
