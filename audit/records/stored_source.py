"""What an algorithm version and a detector version share: a self-contained module stored as
source text, loaded in a fresh namespace, declaring NAME, VERSION and PARAMS, and executed only
after its stored text and parameters match their registration."""
from __future__ import annotations

import json
import re
import types
from typing import Any

from ..errors import AuditError
from ..store.hashing import canonical_json, sha256_text

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def load_module(source: str, label: str, *, kind: str, required: tuple[str, ...], contract: str) -> types.ModuleType:
    """Execute module source in a fresh namespace and check it declares the contract."""
    module = types.ModuleType(f"audit_{kind}_{re.sub(r'[^a-z0-9]', '_', label.lower())}")
    try:
        exec(compile(source, f"<{kind} {label}>", "exec"), module.__dict__)
    except Exception as exc:
        raise AuditError(f"{kind} {label}: its source fails to load: {type(exc).__name__}: {exc}") from None
    missing = [n for n in required if not hasattr(module, n)]
    if missing:
        raise AuditError(f"{kind} {label}: the module lacks {', '.join(missing)}; see {contract} in the README")
    return module


def declared(module: types.ModuleType, origin: str, example: str) -> tuple[str, int, dict[str, Any]]:
    """The NAME, VERSION and (canonical) PARAMS a loaded module declares, checked."""
    name, version = module.NAME, module.VERSION
    if not isinstance(name, str) or not _NAME.match(name):
        raise AuditError(f"{origin}: NAME must be a lowercase identifier like '{example}', not {name!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AuditError(f"{origin}: VERSION must be a positive integer, not {version!r}")
    try:
        params = json.loads(canonical_json(module.PARAMS))
    except (TypeError, ValueError) as exc:
        raise AuditError(f"{origin}: PARAMS must be JSON-able ({exc})") from None
    return name, version, params


def check_stored(*, kind: str, label: str, record_id: str, source: str, source_sha256: str, hash_ok: bool,
                 module_params: Any, params: dict[str, Any]) -> None:
    """Refuse stored source whose text, or parameters, no longer match its registration."""
    if sha256_text(source) != source_sha256:
        raise AuditError(f"{kind} {label} ({record_id}): stored source does not match its registered sha256; "
                         "refusing to run it (audit verify names the change)")
    if not hash_ok or json.loads(canonical_json(module_params)) != params:
        raise AuditError(f"{kind} {label} ({record_id}): stored parameters do not match its registration; "
                         "refusing to run it (audit verify names the change)")
