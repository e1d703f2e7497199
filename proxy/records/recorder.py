"""What to record and when: one `settle` call per answer on the request path (cheap: a decision and an
append), the documents built (messages redacted) and written by one background task off the event loop,
in batches, from a bounded queue. Feedback is attached here too, and evicts a rated answer's cache entry.

Modes (`record:` in config.yaml, or in a policy): `all` every answer; `failures` (the default) answers
that were rejected, flagged, repaired, re-asked or fell back; `feedback` every answer, kept only
`FEEDBACK_ONLY_TTL` unless feedback arrives (then `record_ttl`); `none` nothing. Errors that are not a
verdict (502, 504, ...), cache hits and passthrough streams are not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validators import Output, RequestContext, Validator, default_registry, redact

from ..cache.entry import STORABLE_OUTCOMES
from ..redaction import scrub
from .store import Doc, RecordStore, open_store

if TYPE_CHECKING:
    from ..auth import Caller
    from ..cache import CacheBackend
    from ..metrics import Metrics
    from ..policy import Policy
    from ..settings import Settings

__all__ = ["FAILURE_OUTCOMES", "FEEDBACK_ONLY_TTL", "Recorder", "open_recorder", "records_path"]

FAILURE_OUTCOMES = frozenset({"rejected", "flagged", "repaired", "reasked", "fallback"})
FEEDBACK_ONLY_TTL = 3600.0  # `record: feedback`: how long an unrated answer waits for its feedback
MAX_PENDING = 1000  # default of `record_queue`: answers waiting to be written; past it new ones are dropped
BATCH = 64
MAX_TEXT = 64 * 1024  # characters kept of any one text (message, output)
_TOMBSTONE = b'{"v": 0, "evicted": "negative feedback"}'  # decode_entry reads it as a miss
_log = logging.getLogger("guardproxy.records")


@dataclass(frozen=True, slots=True)
class _Pending:
    """One settled answer, as the request path left it (the document is built off the loop)."""

    request_id: str
    client_request_id: str | None
    created: float
    ttl: float
    mode: str
    outcome: str
    alias: str
    policy: Policy
    deployment: str
    repairs: tuple[str, ...]
    caller_name: str
    caller_hash: str | None
    cache_key: str
    body: Mapping[str, Any]
    final: Mapping[str, Any] | None
    judged: tuple[tuple[str, Any], ...]
    rejected: tuple[Mapping[str, Any], ...]


class Recorder:
    """Records answers and attaches feedback; `close` writes what is still queued."""

    def __init__(
        self,
        store: RecordStore,
        *,
        metrics: Metrics | None = None,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
        owner_secret: bytes | None = None,
    ) -> None:
        self.store = store
        # records name their caller by HMAC(secret, key hash): never the key's plain SHA-256 on disk
        self._owner_secret = owner_secret or os.urandom(32)
        self._metrics = metrics
        self._secrets = tuple(s for s in secrets if s)
        self._clock = clock
        self._queue: deque[_Pending] = deque()
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pii = default_registry(plugins=False).create({"type": "pii", "on_fail": "redact"})
        self.edits = asyncio.Lock()  # feedback is read-modify-write: one at a time per process

    def owner(self, key_hash: str | None) -> str:
        """The id a record keeps for the caller's key (`anonymous` without keys)."""
        if key_hash is None:
            return "anonymous"
        return hmac.new(self._owner_secret, key_hash.encode(), hashlib.sha256).hexdigest()

    # the request path ------------------------------------------------------------------------------
    def settle(
        self,
        settings: Settings,
        policy: Policy,
        caller: Caller,
        *,
        request_id: str,
        alias: str,
        body: Mapping[str, Any],
        cache_key: str,
        verdict: Any | None,
        events: Any,
        rejected: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Queue the settled answer if the mode keeps it: a decision and an append, nothing else."""
        mode = policy.spec.record or settings.record
        if mode == "none" or not request_id:
            return
        outcome = verdict.outcome if verdict is not None else ("rejected" if rejected else None)
        if outcome is None or (mode == "failures" and outcome not in FAILURE_OUTCOMES):
            return
        if len(self._queue) >= self._max_pending:
            self._count("dropped")
            return
        judged = tuple(getattr(events, "judged", ()))
        deployment = verdict.deployment if verdict is not None else (judged[-1][0] if judged else "")
        ttl = min(FEEDBACK_ONLY_TTL, settings.record_ttl) if mode == "feedback" else settings.record_ttl
        self._queue.append(
            _Pending(
                request_id=request_id,
                client_request_id=getattr(events, "client_request_id", None),  # the client's x-request-id
                created=self._clock(),
                ttl=ttl,
                mode=mode,
                outcome=outcome,
                alias=alias,
                policy=policy,
                deployment=deployment,
                repairs=tuple(verdict.repairs) if verdict is not None else (),
                caller_name=caller.name,
                caller_hash=caller.key_hash,
                cache_key=cache_key,
                body=body,
                final=verdict.completion if verdict is not None else None,
                judged=judged,
                rejected=tuple(rejected),
            )
        )
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    # the writer ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far (the feedback route calls it before it looks a record up)."""
        async with self._writing:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                try:
                    docs = await asyncio.to_thread(self._documents, batch)
                    await self.store.put_many(docs)
                    self._count("stored", len(docs))
                except Exception:  # noqa: BLE001 - recording never fails a request, nor stops the writer
                    _log.warning("could not write %d records", len(batch), exc_info=True)
                    self._count("error", len(batch))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.flush()
        await self.store.close()

    def _count(self, result: str, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.records.labels(result).inc(n)

    # documents -------------------------------------------------------------------------------------
    def _documents(self, batch: Sequence[_Pending]) -> list[Doc]:
        return [self._document(p) for p in batch]

    def _document(self, p: _Pending) -> Doc:
        redactors = [self._pii, *(v for v in p.policy.validators if v.on_fail == "redact")]
        final_judgement = next(
            (j for _, j in p.judged if p.final is not None and j.completion is p.final), None
        )
        if p.final is None:  # rejected: the last output judged is the one refused
            raw = p.judged[-1][1].raw if p.judged else None
            earlier = [j.raw for _, j in p.judged[:-1]]
        else:
            raw = final_judgement.raw if final_judgement is not None else p.final
            earlier = [j.raw for _, j in p.judged if j is not final_judgement]
        violations: list[dict[str, Any]] = [dict(v) for v in p.rejected]
        for _, j in p.judged:
            for v in [*j.violations, *j.rejected, *j.flagged]:
                item = v.to_dict()
                if item not in violations:
                    violations.append(item)
        body = p.body
        request = {
            "messages": [self._message(m, redactors) for m in body.get("messages") or ()],
            **{k: body[k] for k in ("response_format", "tools", "tool_choice") if body.get(k) is not None},
        }
        return {
            "id": p.request_id,
            "client_request_id": p.client_request_id,
            "created": p.created,
            "expires": p.created + p.ttl,
            "mode": p.mode,
            "alias": p.alias,
            "policy": p.policy.name,
            "deployment": p.deployment,
            "outcome": p.outcome,
            "repairs": list(p.repairs),
            "violations": violations[:50],
            "key_name": p.caller_name,
            "owner": self.owner(p.caller_hash),
            "cache_key": p.cache_key,
            "request": request,
            "raw_output": self._output(raw, redactors),
            "invalid_outputs": [self._output(r, redactors) for r in earlier[:3]],
            "final_output": self._output(p.final, redactors),
            "feedback": {},
            "evicted": False,
        }

    def _text(self, text: str, redactors: Sequence[Validator]) -> str:
        text = text[:MAX_TEXT]
        try:
            text = redact(redactors, Output(text=text), RequestContext())[0].text or ""
        except Exception:  # noqa: BLE001 - a redactor failure must not let the text through
            return "[withheld]"
        return scrub(text, self._secrets)

    def _message(self, message: Mapping[str, Any], redactors: Sequence[Validator]) -> dict[str, Any]:
        out: dict[str, Any] = {"role": message.get("role")}
        content = message.get("content")
        if isinstance(content, str):
            out["content"] = self._text(content, redactors)
        elif isinstance(content, list):
            out["content"] = [
                {**part, "text": self._text(part["text"], redactors)}
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
                else {"type": part.get("type") if isinstance(part, Mapping) else None}
                for part in content
            ]
        for key in ("name", "tool_call_id"):
            if message.get(key) is not None:
                out[key] = message[key]
        if message.get("tool_calls"):
            out["tool_calls"] = self._calls(message["tool_calls"], redactors)
        return out

    def _calls(self, calls: Any, redactors: Sequence[Validator]) -> list[dict[str, Any]]:
        out = []
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping):
                args = fn.get("arguments")
                out.append(
                    {
                        "function": {
                            "name": fn.get("name"),
                            "arguments": self._text(args, redactors) if isinstance(args, str) else args,
                        }
                    }
                )
        return out

    def _output(self, completion: Mapping[str, Any] | None, redactors: Sequence[Validator]) -> Doc | None:
        """The first choice's message as `{content, tool_calls}` (what a cases file calls `output`)."""
        if completion is None:
            return None
        choices = completion.get("choices") or ()
        message = choices[0].get("message") if choices and isinstance(choices[0], Mapping) else None
        if not isinstance(message, Mapping):
            return None
        content = message.get("content")
        return {
            "content": self._text(content, redactors) if isinstance(content, str) else None,
            "tool_calls": self._calls(message.get("tool_calls"), redactors),
        }

    # feedback --------------------------------------------------------------------------------------
    async def lookup(self, request_id: str) -> Doc | None:
        """The record of `request_id` (or of `resp_<request id>`), after writing what is queued."""
        await self.flush()
        return await self.store.get(request_id.removeprefix("resp_"))

    async def find(self, request_id: str, who: str, *, admin: bool = False) -> Doc | None:
        """The record `request_id` names for the caller `who`: ours (`x-guardproxy-request-id`, or
        `resp_<id>`) when it is the caller's (admins: anyone's), else the one record of the caller's key
        that the client tagged with that `x-request-id`; None when there is none, or more than one."""
        doc = await self.lookup(request_id)
        if doc is not None and (admin or doc.get("owner") == who):
            return doc
        tagged = await self.store.by_client_id(who, request_id, limit=2)
        return tagged[0] if len(tagged) == 1 else None

    async def attach(self, doc: Doc, who: str, feedback: Doc, *, record_ttl: float) -> Doc:
        """Store `feedback` by `who` on the record (replacing that caller's earlier one); keep it longer."""
        doc["feedback"][who] = feedback
        doc["expires"] = max(doc["expires"], self._clock() + record_ttl)
        await self.store.put_many([doc])
        return doc

    async def evict(self, doc: Doc, cache: CacheBackend, ttl: float) -> bool:
        """Replace the answer's cache entry with a tombstone (a miss on every replica sharing the cache)."""
        if not doc.get("cache_key") or doc.get("outcome") not in STORABLE_OUTCOMES:
            return False  # a rejected answer was never cached: the entry under its key is another answer
        return await cache.set(doc["cache_key"], _TOMBSTONE, max(1.0, ttl))


def open_recorder(settings: Settings, *, metrics: Metrics | None, secrets: Sequence[str]) -> Recorder:
    """The recorder for this config: SQLite at `<cache.path>/records.sqlite3`, or Redis."""
    store = open_store(settings.cache.backend, path=records_path(settings.cache.path), url=settings.cache.url)
    return Recorder(
        store,
        metrics=metrics,
        secrets=secrets,
        max_pending=settings.record_queue,
        owner_secret=_owner_secret(settings),
    )


def _owner_secret(settings: Settings) -> bytes | None:
    """The cache's HMAC secret (shared by replicas with redis; generated into the folder for disk)."""
    if settings.cache.secret:
        return settings.cache.secret.encode()
    from ..cache.secret import disk_secret

    try:
        return disk_secret(settings.cache.path)
    except (OSError, ValueError):
        _log.warning("no cache secret: records made before a restart cannot be rated by their key")
        return None


def records_path(cache_path: Path) -> Path:
    return cache_path / "records.sqlite3"
