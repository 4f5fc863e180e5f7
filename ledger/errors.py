"""Every exception the ledger raises on purpose.

The tree, drawn once so that callers can pick the level they care about::

    LedgerError
    ├── ConfigError                 settings, key files, unreachable or too-new databases
    │   └── KeyFileError            a key file that is missing, corrupt or locked by a passphrase
    ├── StoreError                  the SQL store refused or failed an operation
    │   ├── AppendOnlyViolationError  an UPDATE or DELETE hit a ledger table
    │   └── ReadOnlyError           a write asked of a ledger opened read-only
    ├── NotFoundError               a leaf index, entry, size or key that does not exist
    ├── InputError                  a malformed argument (bad body, bad proof request, bad note)
    ├── VerificationError           a cryptographic or structural check failed
    │   ├── SignatureError
    │   ├── InclusionProofError
    │   ├── ConsistencyError
    │   └── CheckpointError
    ├── PolicyError                 policy files and evaluation
    │   └── PolicyParseError        a policy file that does not validate (names file and line)
    └── RecordingError              a teacher call could not be recorded (durability="sync")

Only ``ledger.cli`` knows exit codes and only ``ledger.api`` knows HTTP status codes; both map
from this tree and nowhere else.
"""

from __future__ import annotations

__all__ = [
    "AppendOnlyViolationError",
    "CheckpointError",
    "ConfigError",
    "ConsistencyError",
    "InclusionProofError",
    "InputError",
    "KeyFileError",
    "LedgerError",
    "NotFoundError",
    "NoteFormatError",
    "PolicyError",
    "PolicyParseError",
    "ReadOnlyError",
    "RecordingError",
    "SignatureError",
    "StoreError",
    "VerificationError",
]


class LedgerError(Exception):
    """Base class of every error the ledger raises deliberately."""


class ConfigError(LedgerError):
    """The configuration cannot be used: bad setting, unreachable database, newer schema."""


class KeyFileError(ConfigError):
    """A key file is missing, corrupt, or needs a passphrase that was not given or is wrong."""


class StoreError(LedgerError):
    """The SQL store failed or refused an operation."""


class AppendOnlyViolationError(StoreError):
    """Something tried to UPDATE or DELETE a row of an append-only ledger table."""


class ReadOnlyError(StoreError):
    """A write (append, checkpoint, key rotation) was asked of a ledger opened read-only."""


class NotFoundError(LedgerError):
    """A leaf index, entry id, tree size, checkpoint or key does not exist."""


class InputError(LedgerError):
    """An argument is malformed: a body that is not a JSON object, a proof past the tree size."""


class VerificationError(LedgerError):
    """A cryptographic or structural check failed."""


class SignatureError(VerificationError):
    """A signature does not verify under the key it names."""


class InclusionProofError(VerificationError):
    """An inclusion proof does not lead to the expected root."""


class ConsistencyError(VerificationError):
    """Two tree heads are not consistent: the log was rewritten, rolled back or forked."""


class CheckpointError(VerificationError):
    """A checkpoint or signed note is malformed or carries no valid signature."""


class NoteFormatError(CheckpointError):
    """A signed note or checkpoint is not in the C2SP text format at all (its signatures were
    not the problem): where the note is an input, a file of something else was given."""


class PolicyError(LedgerError):
    """A policy could not be loaded or applied."""


class PolicyParseError(PolicyError):
    """A policy file does not validate; the message names the file and, where known, the line."""


class RecordingError(LedgerError):
    """A teacher call could not be recorded and the recorder was asked to fail closed."""
