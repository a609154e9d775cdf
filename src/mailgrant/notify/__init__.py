"""Telling others what happened: webhook endpoints and their deliveries of the outbox's events
(common.events), and alerts to people (notification channels, incidents)."""
