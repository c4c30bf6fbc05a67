"""ossgate: let browsers upload straight to Alibaba Cloud OSS.

The application factory builds the app from configuration and one blueprint per concern.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from server import health


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the ossgate Flask application.

    ``test_config`` replaces configuration read from the environment, so tests can build an
    app without touching ``os.environ``.
    """
    app = Flask(__name__, instance_relative_config=True)
    if test_config is not None:
        app.config.update(test_config)
    app.register_blueprint(health.bp)
    return app
