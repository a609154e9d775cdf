from mailgrant.notify import admin_alerts  # noqa: F401 - registers the alert sections
