"""Importing this package registers every projection (one module per domain)."""

from web.projections import dsa, dsa_jobs, ops, science, seti  # noqa: F401
