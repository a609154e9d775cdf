"""Settings for the test run: a throwaway MAILGRANT_HOME, a file SQLite database (subprocesses
share it), then the real settings."""

import os
import tempfile

os.environ["MAILGRANT_HOME"] = tempfile.mkdtemp(prefix="mailgrant-test-")
os.environ.setdefault("MAILGRANT_BASE_URL", "http://testserver")
os.environ.pop("MAILGRANT_DATABASE_URL", None)
os.environ.pop("MAILGRANT_VAULT_KEYS", None)

from mailgrant.config.settings import *  # noqa: F403
from mailgrant.config.settings import DATABASES, MAILGRANT_HOME

DATABASES["default"]["TEST"] = {"NAME": str(MAILGRANT_HOME / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
