"""The merged OpenAPI document of both services, and a page to try it."""

from __future__ import annotations

from aiohttp import ClientError

from .proxy import Proxy

SWAGGER_UI = "https://unpkg.com/swagger-ui-dist@5"


async def merged_openapi(proxy: Proxy) -> dict:
    """Both services' documents as one (paths and component schemas merged)."""
    merged: dict = {
        "openapi": "3.0.3",
        "info": {"title": "Appointment booking API", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {"schemas": {}, "responses": {}},
        "tags": [],
    }
    for name, base in proxy.urls.items():
        try:
            doc = await proxy.get_json(base + "/openapi.json", timeout=proxy.timeout[1])
        except (TimeoutError, ClientError, ValueError):
            merged.setdefault("x-unavailable", []).append(name)
            continue
        if not isinstance(doc, dict):
            merged.setdefault("x-unavailable", []).append(name)
            continue
        merged["paths"].update(doc.get("paths", {}))
        for section in ("schemas", "responses"):
            merged["components"][section].update(doc.get("components", {}).get(section, {}))
        merged["tags"].extend(doc.get("tags", []))
    return merged


def docs_page() -> str:
    """An HTML page with Swagger UI over /openapi.json."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Appointment booking API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#ui"}});</script>
</body></html>"""
