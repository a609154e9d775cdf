"""bench/scheduling.py's settings (a module, not a benchmark: `make bench` skips names starting
with _): mailgrant's, with django-tasks and its database backend."""

from mailgrant.config.settings import *  # noqa: F403
from mailgrant.config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks", "django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Connections kept for both ways and for as long: db_worker closes old connections around every
# task, which with a short age would time reconnects, not dispatch.
DATABASES["default"]["CONN_MAX_AGE"] = 600  # noqa: F405
