import os

from django.core.asgi import get_asgi_application

# Also for a server started without the `mailgrant` command (granian, gunicorn, uvicorn):
# what this process creates is its user's alone.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
# Before prometheus_client is imported: every serving process counts into the same folder.
from mailgrant.common.metrics_dir import metrics_dir_prepare  # noqa: E402

metrics_dir_prepare()
application = get_asgi_application()
