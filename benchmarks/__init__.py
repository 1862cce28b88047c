"""pgqueue benchmarks: scripts run against a fresh database, never timed in tests."""
