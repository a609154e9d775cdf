from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailgrant.mailboxes"
    label = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        from mailgrant.mailboxes import health  # noqa: F401  # registers the mailbox reasons
