"""The browser-facing page."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """The landing page; the upload interface is built on it."""
    return render_template("index.html", emulator=current_app.config.get("EMULATOR_SETTINGS"))
