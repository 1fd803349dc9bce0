"""Security headers on every answer: what a page may load and run, no framing, no sniffing, no caching of audits.

A pure ASGI middleware: it only edits the headers of the response's start message, so streamed answers (exports,
uploads' progress) pass through untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# The style element htmx 2 adds to every page for its request indicators (htmx.config.includeIndicatorStyles),
# exactly as the vendored htmx.min.js writes it: allowed by its hash rather than by allowing every inline style.
HTMX_INDICATOR_STYLE = (
    ".htmx-indicator{opacity:0;visibility: hidden} "
    ".htmx-request .htmx-indicator, .htmx-request.htmx-indicator{opacity:1;visibility: visible;"
    "transition: opacity 200ms ease-in}"
)

# Pages whose one inline script the framework writes from constants (FastAPI's Swagger UI page at /docs): their
# script is hashed from the page itself. Our own templates never get this: their scripts are hashed from the files.
FRAMEWORK_PAGES = frozenset({"/docs"})

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)

STATIC_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def source_hash(text: str) -> str:
    """A CSP hash source for an inline script or style element's text."""
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def inline_scripts(html: str) -> list[str]:
    """The text of every inline script (a script element without src) in an HTML text."""
    return _INLINE_SCRIPT.findall(html)


def template_script_hashes(directory: Path = TEMPLATES_DIR) -> list[str]:
    """Hash sources of the inline scripts written in the templates."""
    # A script that renders variables cannot be hashed and is left out: the browser refuses it, and
    # tests/test_security_headers.py names the template.
    found: set[str] = set()
    for path in sorted(directory.rglob("*.html")):
        for script in inline_scripts(path.read_text(encoding="utf-8")):
            if "{{" not in script and "{%" not in script:
                found.add(source_hash(script))
    return sorted(found)


def tile_source(tile_url: str) -> str | None:
    """The CSP source of an optional tile layer: its scheme and host, with placeholders such as {s} as wildcards."""
    parts = urlsplit(tile_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    labels = parts.netloc.split(".")
    placeholders = [n for n, label in enumerate(labels) if "{" in label]
    if placeholders:
        # A wildcard stands only for leftmost labels: everything up to the last placeholder becomes one.
        labels = ["*", *labels[placeholders[-1] + 1 :]]
    return f"{parts.scheme}://{'.'.join(labels)}"


def content_security_policy(*, tile_url: str = "", script_hashes: list[str] | tuple[str, ...] = ()) -> str:
    """The policy of the HTML pages: everything from the app itself, inline code only by its hash."""
    images = ["'self'", "data:"]  # Leaflet's and Swagger UI's small icons are data: URLs
    tiles = tile_source(tile_url) if tile_url else None
    if tiles:
        images.append(tiles)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", source_hash(HTMX_INDICATOR_STYLE)],
        # ECharts writes its tooltips as HTML with style attributes; attributes cannot run code, elements stay hashed.
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": images,
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def no_store(path: str) -> bool:
    """Whether an answer must not be kept by the browser or a proxy: the audit pages and the audit API."""
    return path == "/audit" or path.startswith(("/audit/", "/api/v1/audit"))


class SecurityHeaders:
    """Adds the security headers to every HTTP answer of the wrapped app."""

    def __init__(self, app: ASGIApp, *, tile_url: str = "") -> None:
        self.app = app
        self.script_hashes = template_script_hashes()
        self.tile_url = tile_url
        self.policy = content_security_policy(tile_url=tile_url, script_hashes=self.script_hashes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in FRAMEWORK_PAGES:
            await self._framework_page(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message), path, self.policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(self, headers: MutableHeaders, path: str, policy: str) -> None:
        for name, value in STATIC_HEADERS.items():
            headers[name] = value
        if headers.get("content-type", "").startswith("text/html"):
            headers["Content-Security-Policy"] = policy
        if no_store(path):
            headers["Cache-Control"] = "no-store"

    async def _framework_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The page is small and written whole: hold it, hash its inline scripts, then send it with the policy.
        start: Message | None = None
        body = bytearray()

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            extra = [source_hash(script) for script in inline_scripts(body.decode("utf-8", "replace"))]
            policy = content_security_policy(tile_url=self.tile_url, script_hashes=[*self.script_hashes, *extra])
            self._add(MutableHeaders(scope=start), scope["path"], policy)
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body), "more_body": False})

        await self.app(scope, receive, hold)
