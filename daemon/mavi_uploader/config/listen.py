"""`http_listen`: where the daemon's read-only HTTP endpoint listens (pure parsing).

Loopback unless the user names another address: a port alone (`9464`, `":9464"`) listens on
127.0.0.1, because the status page shows file names and the metrics describe the account's
traffic; serving every interface takes writing `0.0.0.0` or `[::]` on purpose.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
HINT = (
    'HOST:PORT such as "127.0.0.1:9464" or "[::1]:9464", or a port alone such as 9464'
    " (loopback only)"
)


@dataclass(frozen=True)
class ListenAddress:
    host: str  # an IP literal, IPv6 without brackets
    port: int  # 0: any free port (the daemon logs the one it got)

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    @property
    def everywhere(self) -> bool:
        """Every interface of the host (0.0.0.0 or ::)."""
        return ipaddress.ip_address(self.host).is_unspecified

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.ipv6 else f"{self.host}:{self.port}"


def parse_listen(value: object) -> ListenAddress | None:
    """A TOML value (a string, or an integer port) -> the address; None for "" (off).
    ValueError says what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("not a string or a port number")
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit() or (text.startswith(":") and text[1:].isdigit()):
        return ListenAddress(LOOPBACK, _port(text.lstrip(":")))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("an IPv6 address is written [ADDRESS]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError("no port")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets: [{host}]:{port}")
    if host == "localhost":  # a name could resolve elsewhere; this one is loopback by definition
        host = LOOPBACK
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (names are not accepted)") from None
    return ListenAddress(address.compressed, _port(port))


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"port {text!r} is not a number from 0 to 65535")
    return int(text)
