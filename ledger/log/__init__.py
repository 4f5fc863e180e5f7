"""The ledger proper: SQL tables, serialized appends, proofs, checkpoints and verification.

Knows nothing of providers, policies or HTTP.
"""
