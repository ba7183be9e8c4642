"""An HTTP downloader for pooch that resumes an interrupted transfer with a Range request.

pooch's own HTTPDownloader always starts from byte 0 and its temporary file is deleted when a
transfer fails, so a dropped connection 20 GB into an MSD tar costs the whole 20 GB again. pooch
has no resume option (1.9), hence this small class: it keeps the partial bytes in ``<name>.part``
beside the cache file, asks for the rest with ``Range: bytes=N-``, appends when the server answers
206 with a matching ``Content-Range`` and starts over when it answers 200 (no range support) or 416.
The finished bytes are handed to pooch's temporary file, so pooch still checks the hash before the
file takes its cache name; a mismatch deletes it, partial bytes included, and the next try restarts.
Broken transfers are retried here, each try resuming the last, and not by pooch, whose retries
would also download a file of the wrong checksum again, in full, each time.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import requests

CHUNK = 1 << 20
TIMEOUT_S = 60
RETRIES = 3
log = logging.getLogger(__name__)


class IncompleteDownload(requests.exceptions.RequestException):
    """The server closed the transfer before the promised length; pooch retries, which resumes."""


class ResumableDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) keeping partial bytes in ``part``."""

    def __init__(self, part: Path, retries: int = RETRIES, timeout: float = TIMEOUT_S) -> None:
        self.part = Path(part)
        self.retries = retries
        self.timeout = timeout

    def _request(self, url: str) -> tuple[requests.Response, bool]:
        """The response for the rest of ``url``, and whether it continues the partial file."""
        start = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        response = requests.get(url, headers=headers, stream=True, timeout=self.timeout)
        if start and response.status_code == 416:  # the partial file is not a prefix the server knows
            response.close()
            self.part.unlink()
            return self._request(url)
        response.raise_for_status()
        resumed = bool(start) and response.status_code == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {start}-")
        return response, resumed

    def __call__(self, url: str, output_file: str | Any, pooch: Any = None, check_only: bool = False) -> bool | None:
        """Download ``url`` into ``output_file``, retrying a broken transfer from where it broke off."""
        if check_only:
            with requests.head(url, allow_redirects=True, timeout=self.timeout) as head:
                return head.status_code == 200
        self.part.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.retries + 1):
            try:
                self._transfer(url)
                break
            except (IncompleteDownload, requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    raise
                log.warning("%s; trying again (%d of %d)", exc, attempt + 1, self.retries)
                time.sleep(min(attempt + 1, 10))
        os.replace(self.part, output_file)
        return None

    def _transfer(self, url: str) -> None:
        """One try: the rest of ``url`` appended to the partial file, or all of it when the server cannot resume."""
        response, resumed = self._request(url)
        with response, open(self.part, "ab" if resumed else "wb") as out:
            expected = response.headers.get("Content-Length")
            total = int(expected) + (out.tell() if resumed else 0) if expected is not None else None
            try:
                for block in response.iter_content(CHUNK):
                    out.write(block)
            except requests.exceptions.RequestException as exc:
                raise IncompleteDownload(f"{url}: transfer broke off at {out.tell():,} bytes ({exc})") from exc
            if total is not None and out.tell() != total:
                raise IncompleteDownload(f"{url}: got {out.tell():,} of {total:,} bytes")
