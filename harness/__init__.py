"""The platform on one machine, laid out as it runs in production: for the fault tests and the
cluster benchmarks, which both start, kill and count the same processes (``harness.cluster``)."""
