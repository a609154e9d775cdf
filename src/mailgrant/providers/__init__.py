"""The provider registry: every preset mailgrant knows, by id. Add a module, then list it here."""

from mailgrant.providers import azure, generic, google
from mailgrant.providers.base import MAILBOX, USER, Provider

PROVIDERS: dict[str, Provider] = {
    p.id: p for p in (google.PROVIDER, azure.PROVIDER, generic.PROVIDER)
}


def get_provider(provider_id: str) -> Provider:
    try:
        return PROVIDERS[provider_id]
    except KeyError:
        raise KeyError(f"Unknown provider {provider_id!r}; known: {', '.join(PROVIDERS)}") from None


__all__ = ["MAILBOX", "PROVIDERS", "USER", "Provider", "get_provider"]
