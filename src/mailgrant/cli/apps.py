from django.apps import AppConfig


class CliConfig(AppConfig):
    """Every `mailgrant` command (management/commands); no models."""

    name = "mailgrant.cli"
    label = "cli"
    verbose_name = "Command line"
