"""Database URLs: which engine a URL names, and how to show one without its password.

Called by ``conveyor.backends.open_backend``, the engines (for their masked ``url``), the app
and the CLI. Kept apart from ``conveyor.backends`` so an engine never imports the package
that imports every engine.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from conveyor.errors import ConfigurationError

SCHEMES = ("memory", "sqlite", "postgresql", "redis")


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    base = scheme.split("+", 1)[0]
    if base == "postgres":
        base = "postgresql"
    if base == "rediss":
        base = "redis"
    if base not in SCHEMES:
        shown = scheme or "(none)"
        raise ConfigurationError(
            f"unknown database URL scheme {shown!r} in {mask_url(url)!r}; "
            "use sqlite:///file.db, postgresql://..., redis://... or memory://"
        )
    return base


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))
