from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "mailgrant.oauth"
    label = "oauth"
    verbose_name = "OAuth"
