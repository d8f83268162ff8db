"""The tenant's meetings: kept as JSON bytes, indexed by (tenant, organizer, externalId) and id.

Every change is written to the durable journal inside the lock that ordered it and fsynced
before the caller answers (``Persist.sync``), so a meeting a client was told about survives a
``kill -9``. After DELETE the key is free again: a createOrGet with the same externalId makes a
new meeting (201). Microsoft does not document that case; it is the emulator's assumption.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from bulkmeet.emulator.context import Persist


class MeetingRecord:
    """One meeting, kept as its JSON bytes.

    Bytes, not a dict: createOrGet for an existing meeting is then a lookup and a concatenation,
    and a tenant with 100,000 meetings does not hold millions of small objects for the garbage
    collector to walk on every collection.
    """

    __slots__ = ("tenant_id", "organizer_id", "external_id", "app_id", "raw")

    def __init__(self, tenant_id: str, organizer_id: str, external_id: str, app_id: str,
                 raw: bytes) -> None:
        self.tenant_id = tenant_id
        self.organizer_id = organizer_id
        self.external_id = external_id
        self.app_id = app_id
        self.raw = raw

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.tenant_id, self.organizer_id, self.external_id)

    def body(self, version: str) -> bytes:
        return (b'{"@odata.context":"https://graph.microsoft.com/' + version.encode()
                + b'/$metadata#microsoft.graph.onlineMeeting",' + self.raw[1:])

    def state_bytes(self) -> bytes:
        """This record as state-file JSON, without decoding and re-encoding the meeting."""
        head = json.dumps({"tenantId": self.tenant_id, "organizerId": self.organizer_id,
                           "externalId": self.external_id, "appId": self.app_id},
                          separators=(",", ":")).encode()
        return head[:-1] + b',"meeting":' + self.raw + b"}"

    def listing(self) -> dict[str, Any]:
        out = self.data
        out.update(organizerId=self.organizer_id, tenantId=self.tenant_id,
                   externalId=self.external_id, createdByAppId=self.app_id)
        return out


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class MeetingStore:
    def __init__(self, persist: Persist) -> None:
        self._persist = persist
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str, str], MeetingRecord] = {}
        self._by_id: dict[str, MeetingRecord] = {}

    def count(self) -> int:
        return len(self._by_key)

    def records(self) -> list[MeetingRecord]:
        with self._lock:
            return list(self._by_key.values())

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._by_id.clear()

    def load(self, meetings: list[dict[str, Any]]) -> None:
        with self._lock:
            for raw in meetings:
                meeting = raw["meeting"]
                rec = MeetingRecord(raw["tenantId"], raw["organizerId"], raw["externalId"],
                                    raw.get("appId", ""), dumps(meeting))
                self._by_key[rec.key] = rec
                self._by_id[meeting["id"]] = rec

    def _journal(self, rec: MeetingRecord) -> int:
        return self._persist.write(b'{"op":"m","r":' + rec.state_bytes() + b"}")

    def create_or_get(self, key: tuple[str, str, str], app_id: str,
                      make: Callable[[Callable[[str], bool]], dict[str, Any]],
                      may_create: Callable[[], bool]) -> tuple[MeetingRecord | None, bool]:
        """(record, created). ``make(id_taken)`` builds a new meeting; ``may_create()`` False
        (the monthly cap) gives (None, False) for a key that does not exist yet."""
        seq = 0
        with self._lock:
            rec = self._by_key.get(key)
            if rec is not None:
                return rec, False
            if not may_create():
                return None, False
            data = make(self._by_id.__contains__)
            rec = MeetingRecord(key[0], key[1], key[2], app_id, dumps(data))
            self._by_key[key] = rec
            self._by_id[data["id"]] = rec
            seq = self._journal(rec)
        self._persist.sync(seq)
        return rec, True

    def get(self, tenant_id: str, organizer_id: str, meeting_id: str) -> MeetingRecord | None:
        rec = self._by_id.get(meeting_id)
        if rec is None or rec.tenant_id != tenant_id or rec.organizer_id != organizer_id:
            return None
        return rec

    def update(self, rec: MeetingRecord, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
        """Apply ``change`` to the meeting under the lock; returns the new raw bytes."""
        with self._lock:
            if self._by_id.get(rec.data["id"]) is not rec:
                raise LookupError("deleted meanwhile")
            rec.raw = dumps(change(rec.data))
            raw = rec.raw
            seq = self._journal(rec)
        self._persist.sync(seq)
        return raw

    def delete(self, rec: MeetingRecord, meeting_id: str) -> bool:
        with self._lock:
            if self._by_id.get(meeting_id) is not rec:
                return False
            del self._by_id[meeting_id]
            del self._by_key[rec.key]
            seq = self._persist.write({"op": "d", "id": meeting_id})
        self._persist.sync(seq)
        return True
