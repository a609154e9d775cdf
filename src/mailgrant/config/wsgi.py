import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
application = get_wsgi_application()

# A serving process checkpoints SQLite's log from a thread, not inside its requests.
from mailgrant.common.checkpoint import sqlite_checkpointer_start  # noqa: E402

sqlite_checkpointer_start()
