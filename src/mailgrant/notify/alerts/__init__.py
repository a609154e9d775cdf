"""Alerts for people: incidents (a grant, client, mailbox, directory or webhook endpoint gone
failing or needing re-authorization), the channels that hear of them, and the notices sent.

`incidents.py` keeps the incidents in step with the objects' healths (one notice when one
starts, a reminder every MAILGRANT_ALERT_REMIND, one when it ends); `notices.py` writes and
sends the notices; `channels.py` the channels' services; `jobs.py` the worker's jobs."""
