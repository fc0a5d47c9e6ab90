"""Importing this package registers every projection (one module per domain)."""

from web.projections import dsa, dsa_jobs, images, ops, science, seti  # noqa: F401
