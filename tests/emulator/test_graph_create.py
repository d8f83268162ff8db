"""createOrGet behaves as the API reference and graph-facts.md describe."""
from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.emulator.helpers import ADA, ALAN, TENANT, UPN, gid, graph_error

JOIN_URL = re.compile(
    r"^https://teams\.microsoft\.com/l/meetup-join/19%3ameeting_[A-Za-z0-9_-]+%40thread\.v2/0"
    r"\?context=%7b%22Tid%22%3a%22[0-9a-f-]{36}%22%2c%22Oid%22%3a%22[0-9a-f-]{36}%22%7d$"
)
V1_PROPERTIES = {
    "id", "joinWebUrl", "creationDateTime", "videoTeleconferenceId", "joinInformation",
    "audioConferencing", "joinMeetingIdSettings", "externalId", "subject", "startDateTime",
    "endDateTime", "participants", "chatInfo", "lobbyBypassSettings", "allowedPresenters",
    "isEntryExitAnnounced", "allowMeetingChat", "allowTeamworkReactions",
    "allowAttendeeToEnableCamera", "allowAttendeeToEnableMic", "recordAutomatically",
    "watermarkProtection",
}


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ext() -> str:
    return str(uuid.uuid4())


def test_new_meeting_is_201_and_existing_is_200_unchanged(api):
    external = ext()
    body = {"externalId": external, "subject": "Algebra I", "startDateTime": "2030-01-07T15:00:00Z",
            "endDateTime": "2030-01-07T16:15:00Z"}
    first = api.create(ADA, body)
    assert first.status_code == 201, first.text
    changed = dict(body, subject="Renamed", startDateTime="2030-02-01T09:00:00Z",
                   endDateTime="2030-02-01T10:00:00Z")
    again = api.create(ADA, changed)
    assert again.status_code == 200
    a, b = first.json(), again.json()
    assert a == b  # an existing meeting comes back unchanged: new subject and times are ignored
    assert b["subject"] == "Algebra I" and b["startDateTime"].startswith("2030-01-07T15:00:00")


def test_same_external_id_under_two_organizers_is_two_meetings(api):
    external = ext()
    a = api.create(ADA, {"externalId": external})
    b = api.create(ALAN, {"externalId": external})
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


def test_response_has_v1_properties_with_realistic_values(api):
    r = api.create(ADA, {"externalId": ext(), "subject": "Physics",
                         "participants": {"attendees": [
                             {"upn": UPN[ALAN], "role": "presenter"},
                             {"identity": {"user": {"id": gid("guest")}}, "upn": "guest@else.example"}]}})
    assert r.status_code == 201
    m = r.json()
    assert V1_PROPERTIES <= set(m)
    decoded = base64.urlsafe_b64decode(m["id"] + "=" * (-len(m["id"]) % 4)).decode()
    assert decoded.startswith(f"1*{ADA}*0**19:meeting_") and decoded.endswith("@thread.v2")
    assert JOIN_URL.match(m["joinWebUrl"]), m["joinWebUrl"]
    assert f"%22{TENANT}%22" in m["joinWebUrl"] and f"%22{ADA}%22" in m["joinWebUrl"]
    settings = m["joinMeetingIdSettings"]
    assert re.fullmatch(r"\d{12,15}", settings["joinMeetingId"])
    assert re.fullmatch(r"[A-Za-z0-9]{6}", settings["passcode"]) and settings["isPasscodeRequired"]
    audio = m["audioConferencing"]
    assert re.fullmatch(r"\d{9}", audio["conferenceId"])
    assert audio["tollNumber"].startswith("+") and audio["dialinUrl"].startswith("https://dialin.teams.microsoft.com/")
    assert audio["dialinUrl"].endswith(f"?id={audio['conferenceId']}")
    org = m["participants"]["organizer"]
    assert org["upn"] == UPN[ADA] and org["identity"]["user"]["id"] == ADA
    attendees = m["participants"]["attendees"]
    assert attendees[0]["upn"] == UPN[ALAN] and attendees[0]["role"] == "presenter"
    assert attendees[0]["identity"]["user"]["id"] == ALAN  # resolved from the UPN
    assert attendees[1]["role"] == "attendee"
    assert parse(m["creationDateTime"]) <= datetime.now(UTC) + timedelta(seconds=5)


def test_default_times(api):
    before = datetime.now(UTC) - timedelta(seconds=2)
    m = api.create(ADA, {"externalId": ext()}).json()
    start, end = parse(m["startDateTime"]), parse(m["endDateTime"])
    assert before <= start <= datetime.now(UTC) + timedelta(seconds=2)
    assert end - start == timedelta(hours=1)
    m = api.create(ADA, {"externalId": ext(), "startDateTime": "2030-03-01T08:30:00+01:00"}).json()
    assert m["startDateTime"] == "2030-03-01T07:30:00.0000000Z"
    assert m["endDateTime"] == "2030-03-01T08:30:00.0000000Z"


def test_seven_digit_fractions_and_offsets_are_understood(api):
    m = api.create(ADA, {"externalId": ext(), "startDateTime": "2020-02-06T01:49:21.3524945+00:00",
                         "endDateTime": "2020-02-06T02:19:21.3524945+00:00"}).json()
    assert m["startDateTime"] == "2020-02-06T01:49:21.3524940Z"
    assert m["endDateTime"] == "2020-02-06T02:19:21.3524940Z"


@pytest.mark.parametrize("body, why", [
    ({"externalId": "x", "endDateTime": "2030-01-01T10:00:00Z"}, "end without start"),
    ({"externalId": "x", "startDateTime": "2030-01-01T10:00:00Z",
      "endDateTime": "2030-01-01T09:00:00Z"}, "end before start"),
    ({"subject": "no id"}, "missing externalId"),
    ({"externalId": ""}, "empty externalId"),
    ({"externalId": "x", "colour": "blue"}, "unknown property"),
    ({"externalId": "x", "participants": {"attendees": [{"upn": "a@b.example", "role": "boss"}]}},
     "invalid attendee role"),
    ({"externalId": "x", "participants": {"attendees": [{"upn": "a@b.example", "shoe": 1}]}},
     "unknown attendee property"),
    ({"externalId": "x", "subject": 42}, "subject of the wrong type"),
    ({"externalId": "x", "startDateTime": "next tuesday"}, "unparsable date"),
    ({"externalId": "x", "chatInfo": {"threadId": "19:abc@thread.tacv2"}}, "chatInfo on v1.0"),
    (["externalId", "x"], "not an object"),
])
def test_bad_bodies_are_400(api, body, why):
    r = api.create(ADA, body)
    assert r.status_code == 400, why
    assert graph_error(r)["code"] == "BadRequest"


def test_malformed_json_is_400(api):
    r = api.request("POST", f"/v1.0/users/{ADA}/onlineMeetings/createOrGet", token=api.app_token(),
                    data=b'{"externalId": "x",', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and graph_error(r)["code"] == "BadRequest"


def test_chat_info_is_accepted_on_beta(api):
    thread = "19:7ebda77322dd4505ac4dedb5b67df076@thread.tacv2"
    r = api.create(ADA, {"externalId": ext(), "chatInfo": {"threadId": thread}}, version="beta")
    assert r.status_code == 201
    assert r.json()["chatInfo"]["threadId"] == thread
    assert "/beta/$metadata" in r.json()["@odata.context"]


def test_v1_and_beta_share_the_same_meetings(api):
    external = ext()
    a = api.create(ADA, {"externalId": external}, version="v1.0")
    b = api.create(ADA, {"externalId": external}, version="beta")
    assert (a.status_code, b.status_code) == (201, 200) and a.json()["id"] == b.json()["id"]


def test_every_response_carries_request_id_client_request_id_and_date(api):
    r = api.create(ADA, headers={"client-request-id": gid("mine")})
    assert r.headers["client-request-id"] == gid("mine")
    assert uuid.UUID(r.headers["request-id"]) and r.headers["Date"].endswith("GMT")
    r = api.create(ADA)  # none sent: one is generated
    assert uuid.UUID(r.headers["client-request-id"])
    bad = api.create(ADA, {"colour": "x"}, headers={"client-request-id": gid("bad")})
    assert graph_error(bad) and bad.json()["error"]["innerError"]["client-request-id"] == gid("bad")
