"""``GET /docs``: the API described from the app's own OpenAPI schema, as one self-contained HTML page.

FastAPI's Swagger UI loads its script and styles from a CDN, so it is a blank page offline; this page is rendered
on the server (no script, no external file) from ``app.openapi()``: every route with its parameters, form fields
and responses, and a link to the raw schema at ``/openapi.json``. Create the app with ``docs_url=None`` and
include ``router``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter()

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.method { display: inline-block; min-width: 4rem; font-weight: bold; color: #fff; padding: 0 .4rem;
  border-radius: 3px; background: #4a7; } .post { background: #37c; } .delete { background: #c44; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #ddd; padding: .2rem .5rem;
  text-align: left; vertical-align: top; } code { background: #f4f4f4; padding: 0 .2rem; }
"""


def _type(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A short type name for a JSON schema (``string``, ``array of file``, ``string or null`` ...)."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s, components) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}), components)}"
    if schema.get("format") == "binary" or schema.get("contentMediaType") == "application/octet-stream":
        return "file"
    return str(schema.get("type", "any"))


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _rows(cells: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def _operation(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> str:
    parts = [f"<h3><span class='method {method}'>{method.upper()}</span> <code>{escape(path)}</code></h3>"]
    if op.get("summary") or op.get("description"):
        parts.append(f"<p>{escape(op.get('description') or op.get('summary', ''))}</p>")
    params = [
        (f"<code>{escape(p['name'])}</code>", escape(p.get("in", "")), escape(_type(p.get("schema", {}), components)))
        for p in op.get("parameters", [])
    ]
    if params:
        parts.append(_rows(params, ("parameter", "in", "type")))
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        schema = _resolve(content.get("schema", {}), components)
        required = set(schema.get("required", []))
        fields = [
            (
                f"<code>{escape(name)}</code>" + (" (required)" if name in required else ""),
                escape(_type(prop, components)),
                escape(prop.get("description", "")),
            )
            for name, prop in schema.get("properties", {}).items()
        ]
        parts.append(f"<p>Body: <code>{escape(media)}</code></p>" + _rows(fields, ("field", "type", "description")))
    responses = [(escape(code), escape(r.get("description", ""))) for code, r in op.get("responses", {}).items()]
    if responses:
        parts.append(_rows(responses, ("status", "meaning")))
    return "\n".join(parts)


def render(schema: dict[str, Any]) -> str:
    """The HTML page of an OpenAPI schema."""
    info = schema.get("info", {})
    components = schema.get("components", {}).get("schemas", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    body = [f"<h1>{title}</h1>", f"<p>{escape(info.get('description', ''))}</p>"]
    body.append("<p>The machine-readable schema: <a href='openapi.json'>/openapi.json</a>.</p>")
    for path, methods in schema.get("paths", {}).items():
        body.append(f"<h2><code>{escape(path)}</code></h2>")
        body += [_operation(path, method, op, components) for method, op in methods.items()]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """The API reference page (works offline)."""
    return HTMLResponse(render(request.app.openapi()))
