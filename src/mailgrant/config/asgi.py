import os

from django.core.asgi import get_asgi_application

# Also for a server started without the `mailgrant` command (granian, gunicorn, uvicorn):
# what this process creates is its user's alone.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
application = get_asgi_application()
