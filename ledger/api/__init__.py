"""The audit service (FastAPI): routes of DESIGN.md under ``/v1``, bearer tokens with roles."""
