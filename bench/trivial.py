"""The ceiling: a trivial Flask app served with the same gunicorn settings as the services."""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    """A Flask app with GET /healthz and GET /ping, both answering {"ok": true}."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True)

    @app.get("/ping")
    def ping():
        return jsonify(ok=True)

    return app
