"""Scenes given by reference (``{"href": "https://..."}``): a Cloud-Optimised GeoTIFF on a server that
serves byte ranges is read in place by GDAL's /vsicurl/ (nothing copied); anything else is streamed into
the data directory under the upload size limit. Either is then checked like an upload.

The service fetches URLs its callers choose, so it guards against server-side request forgery: only
http and https; every address the host resolves to must be public (no loopback, private, link-local,
multicast or reserved address), unless the operator lists hosts and networks in
``ROADNET_FETCH_ALLOWED_HOSTS``, and then only those are fetched; each redirect is checked the same way
before it is followed, and there are at most ``ROADNET_FETCH_MAX_REDIRECTS``; the whole fetch has a
deadline (``ROADNET_FETCH_TIMEOUT_S``) and stops at ``ROADNET_MAX_UPLOAD_BYTES``. Messages and logs
show a URL without its credentials and query (:func:`redact`), which may hold a password or a signature.

Not covered: a host name that resolves to a public address when checked and to a private one when
connected (DNS rebinding); and a redirect that a COG's server sends GDAL later, while the worker reads
(GDAL is given the URL after the checked redirects, and follows any later one itself). List the hosts
you trust in ``ROADNET_FETCH_ALLOWED_HOSTS`` where that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from starlette.concurrency import run_in_threadpool

from roadnet.errors import FetchError, TooLargeError
from roadnet.settings import Settings
from roadnet.urls import redact

SCHEMES = ("http", "https")
#: Bytes read from the response before one write in a worker thread.
CHUNK = 1024 * 1024
#: What GDAL's COG driver writes in a file's first bytes (its "ghost" header): the scene is tiled, with
#: overviews, and its directories come before the data, so a few range requests read any part of it.
COG_MARK = b"LAYOUT=IFDS_BEFORE_DATA"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address


@dataclass(frozen=True)
class AddressGuard:
    """Which hosts a scene may be fetched from (see the module's docstring)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: list[str]) -> AddressGuard:
        """From ``ROADNET_FETCH_ALLOWED_HOSTS``: each entry a network (``10.0.0.0/8``, ``127.0.0.1``) or
        a host name (``data.example.com``, matched exactly, case aside)."""
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def check(self, url: str) -> None:
        """Nothing when ``url`` may be fetched; :class:`FetchError` saying why not. Resolves the host
        name (blocking)."""
        shown = redact(url)
        parts = urlsplit(url)
        if parts.scheme.lower() not in SCHEMES:
            raise FetchError(f"{shown}: only http and https URLs can be fetched")
        host = parts.hostname
        if not host:
            raise FetchError(f"{shown}: the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except ValueError:
            raise FetchError(f"{shown}: the URL's port is not a number from 0 to 65535") from None
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"{shown}: the host {host} cannot be resolved ({exc})") from None
        addresses = {_address(str(info[4][0])) for info in infos}
        if self.hosts or self.networks:
            if host.lower().rstrip(".") in self.hosts or all(
                any(address in network for network in self.networks) for address in addresses
            ):
                return
            raise FetchError(
                f"{shown}: the host {host} is not one this service fetches from (ROADNET_FETCH_ALLOWED_HOSTS)"
            )
        refused = sorted(str(address) for address in addresses if not address.is_global)
        if refused:
            raise FetchError(
                f"{shown}: the host {host} has a loopback, private or link-local address ({refused[0]}), "
                "which this service does not fetch from; its operator can allow it in "
                "ROADNET_FETCH_ALLOWED_HOSTS"
            )


async def fetch(url: str, dest: Path, settings: Settings) -> str | None:
    """Stream ``url`` into ``dest`` within the settings' guard, size, time and redirect limits; or, when
    it is a Cloud-Optimised GeoTIFF on a server that serves byte ranges, stop after its first bytes and
    return its URL (after redirects), for GDAL to read in place (:func:`roadnet.urls.gdal_path`).

    Returns None when the scene was written to ``dest``. Raises :class:`FetchError` (refused,
    unreachable, not 200, too many redirects, too slow) or :class:`TooLargeError`; ``dest`` is removed
    then.
    """
    guard = AddressGuard.from_entries(settings.fetch_allowed_hosts)
    limit = settings.max_upload_bytes
    current = url
    try:
        async with asyncio.timeout(settings.fetch_timeout_s):
            # trust_env off: no proxy from the environment, whose address the guard would not see.
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
                for _ in range(settings.fetch_max_redirects + 1):
                    await run_in_threadpool(guard.check, current)
                    async with client.stream("GET", current) as response:
                        if response.is_redirect and "location" in response.headers:
                            current = urljoin(current, response.headers["location"])
                            continue
                        if response.status_code != 200:
                            raise FetchError(
                                f"{redact(current)} answered HTTP {response.status_code}, not the scene"
                            )
                        in_place = await _save(response, dest, limit, redact(current))
                        return current if in_place else None
                raise FetchError(
                    f"{redact(url)} redirects more than {settings.fetch_max_redirects} times "
                    "(ROADNET_FETCH_MAX_REDIRECTS)"
                )
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise FetchError(
            f"{redact(url)} could not be fetched within {settings.fetch_timeout_s:g} s "
            "(ROADNET_FETCH_TIMEOUT_S)"
        ) from None
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        # httpx's messages may name the URL it was given, credentials and all.
        why = str(exc).replace(current, redact(current)) or type(exc).__name__
        raise FetchError(f"{redact(current)} could not be fetched: {why}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _too_large(shown: str, limit: int) -> TooLargeError:
    return TooLargeError(
        f"{shown} is larger than the limit of {limit:,} bytes (ROADNET_MAX_UPLOAD_BYTES); "
        "split the scene into smaller ones"
    )


async def _save(response: httpx.Response, dest: Path, limit: int, shown: str) -> bool:
    """Stream the body into ``dest``; or write nothing and say True when it is a COG served by ranges."""
    chunks = response.aiter_bytes(CHUNK)
    first = await anext(chunks, b"")
    if COG_MARK in first[:1024] and response.headers.get("accept-ranges") == "bytes":
        return True
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(shown, limit)
    size = 0
    with dest.open("wb") as out:
        chunk = first
        while chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(shown, limit)
            await run_in_threadpool(out.write, chunk)
            chunk = await anext(chunks, b"")
    return False
