from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "mailgrant.oauth"
    label = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        # The reason codes of grants and clients, registered before any status page reads them.
        from mailgrant.oauth import health  # noqa: F401
