"""The static files the gateway serves.

/readyz's template, /openapi.json (both services' documents merged, built
from their code, no running service needed) and /docs (Swagger UI from the pinned
flask-swagger-ui wheel, no CDN).

`python -m gateway.site DIR` writes them; devstack runs it before starting Caddy, the
Dockerfile at image build.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from shared.config import Config

#: Swagger UI's files that /docs needs (the rest of the dist folder is not served).
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE")
#: Never connects: services build their apps without their databases being up.
_NO_DATABASE = "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=1"

DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Appointment booking API</title>
<link rel="icon" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""


def service_documents() -> dict[str, dict]:
    """Each service's own OpenAPI document, from its app factory (flask-smorest)."""
    import booking_service
    import schedule_service

    cfg = Config(mongo_url=_NO_DATABASE, mongo_timeout_ms=1, reconciler_enabled=False)
    apps = {
        "schedule": schedule_service.create_app(cfg),
        "booking": booking_service.create_app(cfg, start_reconciler=False),
    }
    docs = {}
    for name, app in apps.items():
        resp = app.test_client().get("/openapi.json")
        if resp.status_code != 200:
            raise RuntimeError(f"{name}: /openapi.json answered {resp.status_code}")
        docs[name] = resp.get_json()
    return docs


def merged_openapi(docs: dict[str, dict]) -> dict:
    """Both services' documents as one (paths and component schemas merged)."""
    merged: dict = {
        "openapi": "3.0.3",
        "info": {"title": "Appointment booking API", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {"schemas": {}, "responses": {}},
        "tags": [],
    }
    for doc in docs.values():
        merged["paths"].update(doc.get("paths", {}))
        for section in ("schemas", "responses"):
            merged["components"][section].update(doc.get("components", {}).get(section, {}))
        merged["tags"].extend(doc.get("tags", []))
    return merged


def swagger_dist() -> Path:
    """The Swagger UI dist folder shipped in the flask-swagger-ui wheel."""
    import flask_swagger_ui

    return Path(flask_swagger_ui.__file__).resolve().parent / "dist"


def build(out: Path) -> Path:
    """Write openapi.json and docs/ into `out` (replacing what was there)."""
    out = Path(out)
    (out / "docs").mkdir(parents=True, exist_ok=True)
    doc = merged_openapi(service_documents())
    tmp = out / "openapi.json.tmp"
    tmp.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    tmp.replace(out / "openapi.json")
    dist = swagger_dist()
    for name in SWAGGER_FILES:
        shutil.copyfile(dist / name, out / "docs" / name)
    (out / "docs" / "index.html").write_text(DOCS_PAGE, encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("readyz.json.tmpl"), out / "readyz.json.tmpl")
    return out


def main() -> None:
    """`python -m gateway.site DIR`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory Caddy serves as GATEWAY_SITE_DIR")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
