"""ossgate: let browsers upload straight to Alibaba Cloud OSS.

This package is lazy on purpose: importing ``server`` (or any subpackage, such as the
emulator) loads nothing of the application. ``from server import create_app`` and the
``server:create_app()`` app spec still work; the factory itself lives in ``server.app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
