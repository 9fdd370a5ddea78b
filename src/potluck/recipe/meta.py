"""What a cached recipe carries beside its JSON: enough to authorize and to answer If-None-Match unparsed."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

_META = struct.Struct(">?16sq")


@dataclass(frozen=True, slots=True)
class RecipeMeta:
    is_public: bool
    author_id: uuid.UUID
    version: int

    def pack(self) -> bytes:
        return _META.pack(self.is_public, self.author_id.bytes, self.version)

    @classmethod
    def unpack(cls, raw: bytes) -> RecipeMeta:
        is_public, author, version = _META.unpack(raw)
        return cls(is_public=is_public, author_id=uuid.UUID(bytes=author), version=version)

    def visible_to(self, viewer_id: uuid.UUID | None) -> bool:
        return self.is_public or self.author_id == viewer_id
