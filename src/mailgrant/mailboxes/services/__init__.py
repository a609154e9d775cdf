"""Writes for mailboxes, one job a module: save, log in, test, fetch, send."""
