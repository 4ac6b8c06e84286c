"""Secrets out of messages: a URI's credentials and query values masked wherever one is shown.

At the bottom layer, so that every room (the study storage's errors, tracking's warnings, the CLI's
output) masks the same way.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["redact_uri", "uri_secrets", "mask_secrets"]


def uri_secrets(uri: str | None) -> list[str]:
    """The parts of ``uri`` that must reach no terminal, log or store (password, query values), as
    written, percent-decoded and percent-encoded; longest first."""
    parts = urllib.parse.urlsplit(uri or "")
    found = [parts.password or ""] + [v for _, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 4]
    forms = {f for x in found if x for f in (x, urllib.parse.unquote(x), urllib.parse.quote(x, safe=""))}
    return sorted(forms, key=len, reverse=True)


def mask_secrets(text: str, uri: str | None) -> str:
    """``text`` (an error message, a server's log line) with ``uri``'s secrets replaced by ``***``."""
    for secret in uri_secrets(uri):
        text = text.replace(secret, "***")
    return text


def redact_uri(uri: str | None) -> str:
    """``uri`` without user, password and query (which may hold secrets), fit for messages."""
    if not uri:
        return "MLflow's default tracking store"
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparsable tracking URI>"
    text = uri.split("?", 1)[0] + ("?***" if parts.query else "")
    if "@" in parts.netloc:
        text = text.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
    return text
