"""Where the store and the catalog live: a local folder or an fsspec URL (``s3://bucket/prefix``).

A location is a :class:`~pathlib.Path` for a local folder and a ``str`` for a URL, so local code
keeps using ``pathlib`` and the object-store code paths are chosen by :func:`is_remote` alone.
Credentials and endpoints are never part of a location: each library reads them from its standard
environment and configuration (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``~/.aws``, ... for
s3fs and for delta-rs), so no secret reaches the catalog, a log line or a Prefect parameter.
"""

from __future__ import annotations

from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

Location = Path | str


def is_remote(location: Location | None) -> bool:
    """True for a URL with a scheme other than ``file`` (``s3://...``, ``gs://...``, ``memory://...``)."""
    text = str(location or "")
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


def as_location(value: Location) -> Location:
    """A URL unchanged (without a trailing slash), anything else as a Path (``file://`` stripped)."""
    text = str(value)
    if is_remote(text):
        return text.rstrip("/")
    return Path(text.removeprefix("file://"))


def join(location: Location, *parts: str) -> Location:
    """``location / part / ...``: ``/``-joined for a URL, a Path for a local folder."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])
    return Path(location).joinpath(*parts)


def filesystem(location: Location) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec file system holding ``location`` and the path within it (its own credentials)."""
    return url_to_fs(str(location))
