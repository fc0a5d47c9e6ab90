"""The quota keeper: owns SETI users, tiers, API keys, monthly usage and running jobs."""
