import gc
import os

from django.core.wsgi import get_wsgi_application

# Also for a server started without the `mailgrant` command (granian, gunicorn, uvicorn):
# what this process creates is its user's alone.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
# Before prometheus_client is imported: every serving process counts into the same folder.
from mailgrant.common.metrics_dir import metrics_dir_prepare  # noqa: E402

metrics_dir_prepare()
application = get_wsgi_application()

# A serving process: the token broker's audit rows spooled to a file and moved into the table
# by a thread.
from mailgrant.common.audit_spool import audit_spool_start  # noqa: E402

audit_spool_start()

# What is loaded by now lives as long as the process: keep it out of the collector's full
# passes, which otherwise walk every module, model and URL pattern again (tail latency).
gc.freeze()
