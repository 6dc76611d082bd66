"""The one error family: an AuditError is a user-facing message, printed by the CLI with exit 2."""
from __future__ import annotations


class AuditError(Exception):
    """Bad input or usage: the message says what failed, the offending value, and the next step."""

    exit_code = 2


class ValidationError(AuditError):
    """An input batch failed validation; nothing was stored."""


class InvalidArgument(AuditError):
    """An argument the user wrote (a segment expression, a date, a window) cannot be used."""


class NotFound(AuditError):
    """A snapshot, run, algorithm or account id that the store does not hold."""


class StoreBusy(AuditError):
    """Another process holds the store's write lock."""


class NotComputed(AuditError):
    """A read needs records that only a write makes (e.g. the counterfactual runs of an
    explanation); the service answers it with 409 and the job that makes them."""


class SchemaTooNew(AuditError):
    """The store was written by a newer version of audit."""
