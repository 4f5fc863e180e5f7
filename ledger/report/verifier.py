"""The standalone in-browser verifier page (``verify.html``) and the assets every page inlines.

Invariants:

* ``verify_html()`` is a pure function of the files shipped in this package: no date, no
  version, no data. Its bytes are the same on every machine, so its SHA-256
  (:func:`verify_html_sha256`, printed by ``ledger --version --json`` and the README) pins the
  one page an auditor is asked to trust.
* Pages are self-contained: the script and the stylesheet are inlined, nothing is loaded from
  anywhere, and the page's Content-Security-Policy forbids every fetch (``default-src 'none'``).
* The inlined script can never close its ``<script>`` element early: it holds no ``</``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import jinja2
from markupsafe import Markup

__all__ = [
    "VERIFY_HTML",
    "environment",
    "inline_assets",
    "static_text",
    "verify_html",
    "verify_html_sha256",
]

VERIFY_HTML = "verify.html"


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (autoescaped, undefined names raise)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ledger.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def static_text(name: str) -> str:
    """One shipped static file (``verify.js``, ``report.css``) as text."""
    text = resources.files("ledger.report").joinpath("static", name).read_text("utf-8")
    if name.endswith(".js") and "</" in text:
        # HTML ends a script element at the first "</script": the inlined code must hold none.
        raise RuntimeError(f"{name} contains '</' and cannot be inlined in a <script> element")
    return text


def inline_assets() -> dict[str, Markup]:
    """The stylesheet and the verifier script, marked safe to inline unescaped (trusted,
    shipped files; autoescaping would turn their quotes into entities)."""
    css, script = static_text("report.css"), static_text("verify.js")
    return {"css": Markup(css), "script": Markup(script)}  # noqa: S704 - shipped files, not input


@cache
def verify_html() -> bytes:
    """The standalone verifier page, as UTF-8 bytes."""
    page = environment().get_template("verify.html.j2").render(**inline_assets())
    return page.encode("utf-8")


def verify_html_sha256() -> str:
    """Lowercase hex SHA-256 of :func:`verify_html`, for an auditor to pin the page."""
    return hashlib.sha256(verify_html()).hexdigest()
