"""URLs of scenes given by reference: how they are shown, and how GDAL reads one in place.

Shared by the service (which checks a scene before accepting its job) and the worker (which reads it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

#: GDAL's /vsicurl/ options: no directory listing (one file, not its folder), a few retries, and a
#: time limit per HTTP request, so a stalled server cannot hold a check or a job forever.
VSICURL_OPTIONS = {"empty_dir": "yes", "max_retry": "2", "timeout": "60"}


def redact(url: str) -> str:
    """``url`` without its user, password and query (which may hold a signature): what messages, logs
    and status documents show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def gdal_path(url: str) -> Path:
    """The path GDAL opens to read ``url`` in place through /vsicurl/, with range requests.

    The ``/vsicurl?...&url=`` form, URL-encoded, has no ``//`` for :class:`~pathlib.Path` to collapse,
    so it passes through code that takes paths.
    """
    return Path("/vsicurl?" + urlencode({**VSICURL_OPTIONS, "url": url}))
