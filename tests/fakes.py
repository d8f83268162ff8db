"""Fakes behind bulkmeet's seams, for fast tests of logic that does not need the emulator.

``FakeGraph`` stands behind ``bulkmeet.graph.GraphGateway``: an in-memory Graph with createOrGet's
semantics and a script of canned answers. Tests of HTTP, TLS and Graph's real answers use the
emulator instead; this is for the runner's retry, throttling and concurrency rules.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from bulkmeet.graph import BatchRequest, GraphGateway, GraphResponse


class FakeGraph(GraphGateway):
    """In-memory Graph with createOrGet's semantics, plus a script of canned failures.

    ``script`` maps an externalId (createOrGet) or a UPN (user lookup) to a list of responses to
    give (in order) before behaving normally, so a test can say "this row gets 429 then 503 then
    works".
    """

    def __init__(self, users: Mapping[str, str] | None = None, delegated: bool = False) -> None:
        self.users = {k.lower(): v for k, v in (users or {}).items()}  # upn -> object id
        self.delegated = delegated
        self.meetings: dict[tuple[str, str], dict[str, Any]] = {}
        self.script: dict[str, list[GraphResponse]] = {}
        self.calls: list[tuple[str, str | None, str | None]] = []
        self._lock = threading.Lock()

    def create_or_get(self, organizer_id: str | None, body: Mapping[str, Any]) -> GraphResponse:
        ext = str(body.get("externalId", ""))
        with self._lock:
            self.calls.append(("createOrGet", organizer_id, ext))
            queued = self.script.get(ext)
            if queued:
                return queued.pop(0)
            key = (organizer_id or "me", ext)
            if key in self.meetings:
                return GraphResponse(200, self.meetings[key], {"request-id": str(uuid.uuid4())})
            meeting = {
                "id": f"fake-{len(self.meetings) + 1}",
                "externalId": ext,
                "subject": body.get("subject"),
                "startDateTime": body.get("startDateTime"),
                "endDateTime": body.get("endDateTime"),
                "joinWebUrl": f"https://teams.microsoft.com/l/meetup-join/fake-{ext}",
            }
            self.meetings[key] = meeting
            return GraphResponse(201, meeting, {"request-id": str(uuid.uuid4())})

    def get_user(self, upn: str) -> GraphResponse:
        with self._lock:
            self.calls.append(("getUser", None, upn))
            queued = self.script.get(upn)
            if queued:
                return queued.pop(0)
        oid = self.users.get(upn.lower())
        if oid is None:
            return GraphResponse(404, {"error": {"code": "Request_ResourceNotFound",
                                                 "message": f"Resource '{upn}' does not exist."}})
        return GraphResponse(200, {"id": oid})

    # -- one meeting by id (sync: GET/PATCH/DELETE) ------------------------------------------

    def _by_id(self, organizer_id: str | None, meeting_id: str) -> tuple[str, str] | None:
        for key, meeting in self.meetings.items():
            if meeting["id"] == meeting_id and key[0] == (organizer_id or "me"):
                return key
        return None

    @staticmethod
    def _gone(meeting_id: str) -> GraphResponse:
        return GraphResponse(404, {"error": {"code": "NotFound",
                                             "message": f"Meeting {meeting_id} not found."}})

    def _meeting_call(self, verb: str, organizer_id: str | None, meeting_id: str
                      ) -> tuple[GraphResponse | None, tuple[str, str] | None]:
        self.calls.append((verb, organizer_id, meeting_id))
        queued = self.script.get(meeting_id)
        if queued:
            return queued.pop(0), None
        key = self._by_id(organizer_id, meeting_id)
        return (self._gone(meeting_id) if key is None else None), key

    def get_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        with self._lock:
            answer, key = self._meeting_call("get", organizer_id, meeting_id)
            if answer is not None or key is None:
                return answer or self._gone(meeting_id)
            return GraphResponse(200, dict(self.meetings[key]), {"request-id": str(uuid.uuid4())})

    def update_meeting(self, organizer_id: str | None, meeting_id: str,
                       body: Mapping[str, Any]) -> GraphResponse:
        """Graph's rules: both times or neither, the whole attendee list, options as sent."""
        with self._lock:
            answer, key = self._meeting_call("update", organizer_id, meeting_id)
            if answer is not None or key is None:
                return answer or self._gone(meeting_id)
            if ("startDateTime" in body) != ("endDateTime" in body):
                return GraphResponse(400, {"error": {"code": "BadRequest",
                                                     "message": "An error has occurred."}})
            meeting = dict(self.meetings[key])
            for name, value in body.items():
                if isinstance(value, Mapping) and isinstance(meeting.get(name), Mapping):
                    meeting[name] = {**meeting[name], **value}
                else:
                    meeting[name] = value
            self.meetings[key] = meeting
            return GraphResponse(200, dict(meeting), {"request-id": str(uuid.uuid4())})

    def delete_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        with self._lock:
            answer, key = self._meeting_call("delete", organizer_id, meeting_id)
            if answer is not None or key is None:
                return answer or self._gone(meeting_id)
            del self.meetings[key]
            return GraphResponse(204, None, {"request-id": str(uuid.uuid4())})

    def batch(self, requests: Sequence[BatchRequest]) -> list[GraphResponse]:
        """createOrGet items only (what the runner batches); one answer per item, in order."""
        with self._lock:
            self.calls.append(("batch", None, str(len(requests))))
        out = []
        for item in requests:
            parts = item.path.strip("/").split("/")
            if item.method != "POST" or parts[-2:] != ["onlineMeetings", "createOrGet"]:
                out.append(GraphResponse(400, {"error": {"code": "BadRequest", "message": "x"}}))
                continue
            organizer = None if parts[0] == "me" else unquote(parts[1])
            out.append(self.create_or_get(organizer, item.body or {}))
        return out
