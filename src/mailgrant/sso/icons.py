"""Sign-in button icons: a named one shipped with mailgrant, or a small uploaded image."""

from __future__ import annotations

import base64

# Shipped in static/mailgrant/icons/<name>.svg; the provider's (Provider.icon) is the default.
ICONS = ("google", "microsoft", "key", "openid", "building", "lock")
MAX_IMAGE_BYTES = 64 * 1024

# Raster formats only, recognised by their first bytes: an SVG can carry script.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class IconInvalid(ValueError):
    pass


def icon_name_check(name: str) -> str | None:
    if name and name not in ICONS:
        return f"Unknown icon {name!r}: one of {', '.join(ICONS)}, or upload an image."
    return None


def icon_data_uri(data: bytes) -> str:
    """The uploaded image as a data: URI, shown inline on the login page."""
    if len(data) > MAX_IMAGE_BYTES:
        raise IconInvalid(f"The image is over {MAX_IMAGE_BYTES // 1024} KB; use a smaller one.")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "image/webp"
    else:
        kind = next((k for sig, k in _SIGNATURES if data.startswith(sig)), "")
    if not kind:
        raise IconInvalid("Upload a PNG, JPEG, GIF or WebP image (SVG is not accepted).")
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"
