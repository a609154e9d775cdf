from typing import Any

from django import template

from mailgrant.common.csp import allow_form_target
from mailgrant.directory.selectors import ldap_directories_for_login
from mailgrant.sso.selectors import login_buttons

register = template.Library()


@register.inclusion_tag("sso/buttons.html", takes_context=True)
def sso_login_buttons(context: Any, next_url: str = "") -> dict[str, Any]:
    buttons = login_buttons()
    for button in buttons:
        allow_form_target(context.get("request"), button.authorize_url)
    return {
        "buttons": buttons,
        "directories": [d.name for d in ldap_directories_for_login()],
        "next_url": next_url,
        "csrf_token": context.get("csrf_token"),
    }
