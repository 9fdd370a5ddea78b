"""Every POTLUCK_* environment variable that Settings reads (nested groups joined by `__`)."""

from __future__ import annotations

from pydantic import BaseModel

from potluck.config import Settings


def setting_names(model: type[BaseModel] = Settings, prefix: str = "POTLUCK_") -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= setting_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names
