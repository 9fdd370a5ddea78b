"""Short-lived signed URLs for the app's own /media (local disk): an HMAC-SHA256 of the key and its expiry.

`/media/{key}?expires={unix seconds}&signature={hex}`; the signature covers both, so neither the key nor the expiry
can be changed, and a URL stops working at its expiry. S3 has its own (a presigned GET, storage.S3Storage).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from potluck.kit.media_keys import public_url


class UrlSigner:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str, expires: int) -> str:
        """The URL of `key`, valid until `expires` (unix seconds)."""
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{public_url(self.base_url, key)}?{query}"

    def verify(self, key: str, expires: str | None, signature: str | None, now: float) -> bool:
        """Whether a request's `expires` and `signature` are this signer's for `key`, and not yet expired."""
        if expires is None or signature is None or not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) <= now:
            return False
        return hmac.compare_digest(self._signature(key, int(expires)), signature)
