from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "mailgrant.sso"
    label = "sso"
    verbose_name = "Single sign-on"
