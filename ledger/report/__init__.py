"""The HTML dataset report and the in-browser evidence-pack verifier.

Invariants:

- Pages are single self-contained HTML files (templates and assets ship in this package): no
  external asset, no network, printable, and they work when opened from ``file://``.
- ``verify.html`` is byte-identical everywhere (:func:`verify_html_sha256` pins it); the report
  embeds the same verifier script plus the pack members it checks.
- The browser checks what ``ledger manifest verify`` checks about signatures and proofs (the
  checkpoint, the multiproof, every entry, the DSSE statement, the dataset files' digests);
  the re-derivation of links and verdicts stays with the command line.
- Reports say what dated terms say, never what is lawful.

Example:
    >>> from ledger.report import ReportPack, render_dataset_report
    >>> audit = lg.audit_dataset(["train.jsonl"])                        # doctest: +SKIP
    >>> html = render_dataset_report(audit, ReportPack.from_pack("pack"))  # doctest: +SKIP
"""

from __future__ import annotations

from ledger.report.render import (
    EMBEDDED_MEMBERS,
    REPORT_HTML,
    ReportPack,
    pack_pages,
    render_dataset_report,
)
from ledger.report.verifier import VERIFY_HTML, verify_html, verify_html_sha256

__all__ = [
    "EMBEDDED_MEMBERS",
    "REPORT_HTML",
    "VERIFY_HTML",
    "ReportPack",
    "pack_pages",
    "render_dataset_report",
    "verify_html",
    "verify_html_sha256",
]
