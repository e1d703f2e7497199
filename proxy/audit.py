"""The audit trail: one JSON line per guardrail event (violation, repair, re-ask, fallback, rejection,
flag, redaction) in a rotated file created 0600, excerpts redacted (PII, secrets, URLs) and truncated."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from validators import Output, RequestContext, Validator, Violation, default_registry, redact

from .redaction import scrub

__all__ = ["AuditEvents", "AuditLog", "KINDS"]

KINDS = frozenset({"violation", "repair", "reask", "fallback", "rejection", "flagged", "redaction"})
EXCERPT_CHARS = 200
_SCAN_CHARS = 4000  # redact on a bounded prefix, then cut: a finding is never split before redaction
_TAIL_BYTES = 1 << 20


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose every file (the first and each after rollover) is created 0600."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.errors_seen = 0
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(self.baseFilename, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        # another worker may have rotated the file: follow the name, not the old inode
        if self.stream is not None:
            try:
                moved = os.stat(self.baseFilename).st_ino != os.fstat(self.stream.fileno()).st_ino
            except OSError:
                moved = True
            if moved:
                self.stream.close()
                self.stream = None
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's API
        self.errors_seen += 1  # a full disk must not break requests nor print tracebacks


class AuditLog:
    """Appends audit events as JSON lines; `path=None` disables it; never raises."""

    def __init__(
        self,
        path: Path | None,
        *,
        max_bytes: int,
        backups: int,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._clock = clock
        self._secrets = tuple(s for s in secrets if s)
        self._pii: Validator | None = None
        self._handler: _PrivateRotatingHandler | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._handler = _PrivateRotatingHandler(path, max_bytes=max_bytes, backups=backups)
            self._handler.setFormatter(logging.Formatter("%(message)s"))
            self._pii = default_registry(plugins=False).create({"type": "pii", "on_fail": "redact"})
        except Exception:  # noqa: BLE001 - an unwritable audit path disables the trail, not the proxy
            logging.getLogger("guardproxy.audit").warning("audit log disabled: cannot open its file")
            self._handler = None

    @property
    def enabled(self) -> bool:
        return self._handler is not None

    @property
    def errors(self) -> int:
        """Events that could not be written."""
        return self._handler.errors_seen if self._handler is not None else 0

    def redact_excerpt(self, text: str | None) -> str | None:
        """PII, secrets, URLs and key-shaped strings replaced; cut to about 200 characters."""
        if text is None:
            return None
        text = text[:_SCAN_CHARS]
        if self._pii is not None:
            try:
                text = redact([self._pii], Output(text=text), RequestContext())[0].text or ""
            except Exception:  # noqa: BLE001 - a redactor failure must not let the text through
                text = "[excerpt withheld]"
        text = scrub(text, self._secrets)
        return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"

    def record(
        self,
        kind: str,
        *,
        request_id: str,
        policy: str,
        deployment: str,
        alias: str,
        validator: str | None = None,
        message: str | None = None,
        excerpt: str | None = None,
        **fields: Any,
    ) -> None:
        """Append one event line."""
        handler = self._handler
        if handler is None:
            return
        try:
            data: dict[str, Any] = {
                "ts": round(self._clock(), 3),
                "kind": kind,
                "request_id": request_id,
                "alias": alias,
                "policy": policy,
                "deployment": deployment,
                "validator": validator,
                "message": None if message is None else scrub(message, self._secrets)[:1000],
                "excerpt": self.redact_excerpt(excerpt),
            }
            for name, value in fields.items():
                data.setdefault(name, scrub(value, self._secrets) if isinstance(value, str) else value)
            line = orjson.dumps(data, default=str).decode()
            handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "args": None}))
        except Exception:  # noqa: BLE001 - auditing never fails a request
            handler.errors_seen += 1

    def tail(self, n: int = 100) -> list[dict[str, Any]]:
        """The last `n` events (newest last), reading at most 1 MB from the end of the current file."""
        if self.path is None or n <= 0:
            return []
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                start = max(0, size - _TAIL_BYTES)
                fh.seek(start)
                blob = fh.read()
        except OSError:
            return []
        lines = blob.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first line was cut by the seek
        out: list[dict[str, Any]] = []
        for raw in reversed(lines):
            if len(out) >= n:
                break
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(item, dict):
                out.append(item)
        out.reverse()
        return out

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._handler = None


class AuditEvents:
    """The ladder's event sink for one request: audit lines for its steps, forwarded to `inner` (metrics).

    Steps: `violation` (one line per violation, `flagged` for flag-mode ones), `repair`, `redaction`,
    `reask`, `fallback`; the pipeline adds `rejected` when the request ends in a 422.
    """

    def __init__(
        self,
        audit: AuditLog,
        *,
        request_id: str,
        alias: str,
        policy: str,
        inner: Any | None = None,
        client_request_id: str | None = None,
    ) -> None:
        self._audit = audit
        self._inner = inner
        self.judged: list[tuple[str, Any]] = []  # (deployment, judgement) per step, for proxy.records
        self._ids: dict[str, Any] = {"request_id": request_id, "alias": alias, "policy": policy}
        # the client's own x-request-id, bounded: never the correlation id (proxy.records keeps it too)
        self.client_request_id = client_request_id[:128] if client_request_id else None
        if self.client_request_id:
            self._ids["client_request_id"] = self.client_request_id

    def upstream_call(self, deployment: str, result: str) -> None:
        if self._inner is not None:
            self._inner.upstream_call(deployment, result)

    def retry(self, deployment: str, error: Any) -> None:
        if self._inner is not None:
            self._inner.retry(deployment, error)

    def step(self, kind: str, deployment: str, judgement: Any | None) -> None:
        """Record one ladder step (never raises: the audit log swallows its own errors)."""
        if self._inner is not None:
            self._inner.step(kind, deployment, judgement)
        if judgement is not None and (not self.judged or self.judged[-1][1] is not judgement):
            self.judged.append((deployment, judgement))
        if judgement is None:
            if kind in KINDS:
                self._audit.record(kind, deployment=deployment, **self._ids)
            return
        invalid = _text_of(getattr(judgement, "invalid_output", None))
        final = _completion_text(getattr(judgement, "completion", None))
        if kind == "violation":
            for v in [*judgement.violations, *judgement.rejected]:
                self._violation("violation", deployment, v, invalid or final)
            for v in judgement.flagged:
                self._violation("flagged", deployment, v, final)
        elif kind == "repair":
            self._audit.record(
                "repair", deployment=deployment, excerpt=final, repairs=list(judgement.repairs), **self._ids
            )
        elif kind == "redaction":
            redactions = list(getattr(judgement, "redactions", ()))
            self._audit.record(
                "redaction", deployment=deployment, excerpt=final, redactions=redactions, **self._ids
            )
        elif kind in KINDS:
            self._audit.record(kind, deployment=deployment, excerpt=invalid or final, **self._ids)

    def rejected(self, violations: Sequence[Mapping[str, Any]], *, deployment: str = "") -> None:
        """The 422: one `rejection` line per violation."""
        for v in violations or [{}]:
            self._audit.record(
                "rejection",
                deployment=deployment,
                validator=v.get("validator"),
                message=v.get("message"),
                path=v.get("path"),
                **self._ids,
            )

    def _violation(self, kind: str, deployment: str, v: Violation, excerpt: str | None) -> None:
        self._audit.record(
            kind,
            deployment=deployment,
            validator=v.validator,
            message=v.message,
            path=v.path,
            excerpt=excerpt,
            **self._ids,
        )


def _text_of(output: Any) -> str | None:
    text = getattr(output, "text", None)
    return text if isinstance(text, str) else None


def _completion_text(completion: Mapping[str, Any] | None) -> str | None:
    for choice in (completion or {}).get("choices") or ():
        content = (choice.get("message") or {}).get("content") if isinstance(choice, Mapping) else None
        if isinstance(content, str):
            return content
    return None
