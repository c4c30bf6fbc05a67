"""ossgate: let browsers upload straight to Alibaba Cloud OSS.

The application factory builds the app from configuration and one blueprint per concern.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from server import health, pages


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the ossgate Flask application.

    ``test_config`` replaces configuration read from the environment, so tests can build an
    app without touching ``os.environ``.
    """
    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    if test_config is not None:
        app.config.update(test_config)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    return app
