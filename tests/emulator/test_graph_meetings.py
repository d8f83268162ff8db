"""GET / PATCH / DELETE of a meeting, following Graph's update rules."""
from __future__ import annotations

import uuid

import pytest

from tests.emulator.helpers import (
    ADA,
    ALAN,
    GLOBAL_APP,
    NO_POLICY_APP,
    PUBLIC_APP,
    TENANT,
    UPN,
    graph_error,
)


@pytest.fixture
def meeting(api):
    r = api.create(ADA, {"externalId": str(uuid.uuid4()), "subject": "Before",
                         "startDateTime": "2030-05-01T10:00:00Z", "endDateTime": "2030-05-01T11:00:00Z",
                         "participants": {"attendees": [{"upn": UPN[ALAN], "role": "attendee"}]}})
    assert r.status_code == 201
    return r.json()


def path(meeting: dict, organizer: str = ADA, version: str = "v1.0") -> str:
    return f"/{version}/users/{organizer}/onlineMeetings/{meeting['id']}"


def test_get_meeting(api, meeting):
    r = api.request("GET", path(meeting), token=api.app_token())
    assert r.status_code == 200 and r.json()["id"] == meeting["id"]
    assert api.request("GET", path(meeting, version="beta"), token=api.app_token()).status_code == 200


def test_meeting_of_another_organizer_is_404(api, meeting):
    r = api.request("GET", path(meeting, organizer=ALAN), token=api.app_token())
    assert r.status_code == 404 and graph_error(r)["code"] == "NotFound"


def test_meeting_calls_need_the_access_policy_too(api, meeting):
    r = api.request("GET", path(meeting), token=api.app_token(NO_POLICY_APP))
    assert r.status_code == 403


def test_patch_subject_and_both_times(api, meeting):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={
        "subject": "After", "startDateTime": "2030-05-02T10:00:00Z", "endDateTime": "2030-05-02T12:00:00Z"})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["subject"] == "After"
    assert m["startDateTime"].startswith("2030-05-02T10:00:00") and m["endDateTime"].startswith("2030-05-02T12:00:00")
    assert m["id"] == meeting["id"] and m["joinWebUrl"] == meeting["joinWebUrl"]
    # The change is what createOrGet returns from now on.
    again = api.create(ADA, {"externalId": meeting["externalId"], "subject": "ignored"})
    assert again.status_code == 200 and again.json()["subject"] == "After"


@pytest.mark.parametrize("body, why", [
    ({"startDateTime": "2030-05-02T10:00:00Z"}, "start without end"),
    ({"endDateTime": "2030-05-02T10:00:00Z"}, "end without start"),
    ({"startDateTime": "2030-05-02T10:00:00Z", "endDateTime": "2030-05-02T09:00:00Z"}, "end before start"),
    ({"participants": {"organizer": {"upn": UPN[ALAN],
                                     "identity": {"user": {"id": ALAN}}}}}, "new organizer"),
    ({"joinWebUrl": "https://example.com"}, "read-only property"),
    ({"colour": "blue"}, "unknown property"),
    ({"allowedPresenters": "anyone"}, "bad enum"),
    ({"externalId": "another"}, "externalId change"),
])
def test_patch_rules(api, meeting, body, why):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json=body)
    assert r.status_code == 400, why
    assert graph_error(r)["code"] == "BadRequest"
    unchanged = api.request("GET", path(meeting), token=api.app_token()).json()
    assert unchanged == dict(meeting, **{"@odata.context": unchanged["@odata.context"]})


def test_patch_keeps_organizer_when_repeated_and_replaces_attendees_whole(api, meeting):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={"participants": {
        "organizer": {"upn": UPN[ADA], "identity": {"user": {"id": ADA}}},
        "attendees": [{"upn": "guest@else.example", "role": "presenter"}]}})
    assert r.status_code == 200, r.text
    participants = r.json()["participants"]
    assert participants["organizer"]["identity"]["user"]["id"] == ADA
    assert [a["upn"] for a in participants["attendees"]] == ["guest@else.example"]


def test_delete_then_create_or_get_makes_a_new_meeting(api, meeting):
    r = api.request("DELETE", path(meeting), token=api.app_token())
    assert r.status_code == 204 and r.content == b""
    assert api.request("GET", path(meeting), token=api.app_token()).status_code == 404
    again = api.create(ADA, {"externalId": meeting["externalId"]})
    assert again.status_code == 201 and again.json()["id"] != meeting["id"]


def test_me_paths_with_a_delegated_token(api, emu):
    token = emu.issue_access_token(tenant_id=TENANT, client_id=PUBLIC_APP, user=UPN[ADA])
    created = api.create("me", token=token)
    assert created.status_code == 201
    mid = created.json()["id"]
    r = api.request("PATCH", f"/v1.0/me/onlineMeetings/{mid}", token=token, json={"subject": "Mine"})
    assert r.status_code == 200 and r.json()["subject"] == "Mine"
    assert api.request("DELETE", f"/v1.0/me/onlineMeetings/{mid}", token=token).status_code == 204


def test_admin_meetings_listing_names_tenant_organizer_and_external_id(api, meeting):
    listing = api.request("GET", "/_emulator/meetings").json()
    mine = [m for m in listing if m["id"] == meeting["id"]]
    assert len(mine) == 1
    m = mine[0]
    assert m["organizerId"] == ADA and m["externalId"] == meeting["externalId"] and m["tenantId"]


def test_wrong_method_and_unknown_segment(api):
    r = api.request("GET", f"/v1.0/users/{ADA}/onlineMeetings/createOrGet", token=api.app_token())
    assert r.status_code == 405
    r = api.request("GET", f"/v1.0/users/{ADA}/calendars", token=api.app_token(GLOBAL_APP))
    assert r.status_code == 400 and graph_error(r)["code"] == "BadRequest"


# --------------------------------------------------------------------------- v1.0 options

UPDATABLE = [
    ("allowRecording", False), ("allowTranscription", False), ("allowBreakoutRooms", False),
    ("allowedLobbyAdmitters", "organizerAndCoOrganizers"), ("allowLiveShare", "disabled"),
    ("allowPowerPointSharing", False), ("allowWhiteboard", False),
    ("allowCopyingAndSharingMeetingContent", False), ("allowMeetingChat", "limited"),
    ("isEntryExitAnnounced", False), ("recordAutomatically", True),
    ("allowAttendeeToEnableCamera", False), ("allowAttendeeToEnableMic", False),
    ("allowTeamworkReactions", False), ("allowedPresenters", "organization"),
    ("allowParticipantsToChangeName", True), ("shareMeetingChatHistoryDefault", "all"),
    ("lobbyBypassSettings", {"scope": "everyone", "isDialInBypassEnabled": True}),
    ("watermarkProtection", {"isEnabledForContentSharing": True, "isEnabledForVideo": False}),
    ("chatRestrictions", {"allowTextOnly": True}),
    ("broadcastSettings", {"allowedAudience": "organization", "isRecordingEnabled": True,
                           "isAttendeeReportEnabled": False, "isQuestionAndAnswerEnabled": True,
                           "isVideoOnDemandEnabled": False, "captions": None}),
]


def test_new_meetings_carry_the_v1_options_with_graphs_defaults(meeting):
    defaults = {"allowRecording": True, "allowTranscription": True, "allowBreakoutRooms": True,
                "allowedLobbyAdmitters": "organizerAndCoOrganizersAndPresenters",
                "allowLiveShare": "enabled", "allowPowerPointSharing": True, "allowWhiteboard": True,
                "allowCopyingAndSharingMeetingContent": True, "allowMeetingChat": "enabled",
                "allowedPresenters": "everyone", "isEntryExitAnnounced": True,
                "recordAutomatically": False, "allowParticipantsToChangeName": False,
                "isEndToEndEncryptionEnabled": False, "watermarkProtection": None,
                "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False}}
    assert {k: meeting[k] for k in defaults} == defaults
    for key in ("meetingType", "meetingTemplateId", "chatRestrictions", "broadcastSettings"):
        assert key in meeting
    assert meeting["meetingOptionsWebUrl"].startswith("https://teams.microsoft.com/meetingOptions/")
    assert ADA in meeting["meetingOptionsWebUrl"]
    assert meeting["expiryDateTime"].startswith("2030-06-30T11:00:00")  # 60 days after the end


@pytest.mark.parametrize("key, value", UPDATABLE, ids=[k for k, _ in UPDATABLE])
def test_every_updatable_property_can_be_patched(api, meeting, key, value):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={key: value})
    assert r.status_code == 200, r.text
    assert r.json()[key] == value
    assert api.request("GET", path(meeting), token=api.app_token()).json()[key] == value


@pytest.mark.parametrize("body", [
    {"allowRecording": "no"}, {"allowLiveShare": "sometimes"}, {"allowedLobbyAdmitters": "everyone"},
    {"broadcastSettings": {"allowedAudience": "mars"}}, {"chatRestrictions": {"allowTextOnly": 1}},
    {"joinMeetingIdSettings": {"passcode": "123"}}, {"meetingOptionsWebUrl": "https://x"},
    {"expiryDateTime": "2031-01-01T00:00:00Z"}, {"lobbyBypassSettings": {"scope": "martians"}},
])
def test_bad_or_read_only_options_are_400(api, meeting, body):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json=body)
    assert r.status_code == 400 and graph_error(r)["code"] == "BadRequest"


def test_an_update_pushes_expiry_out(api, meeting):
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={
        "startDateTime": "2030-09-01T10:00:00Z", "endDateTime": "2030-09-01T11:00:00Z"})
    assert r.json()["expiryDateTime"].startswith("2030-10-31T11:00:00")
    # An earlier time never pulls expiry back in.
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={
        "startDateTime": "2030-05-01T10:00:00Z", "endDateTime": "2030-05-01T11:00:00Z"})
    assert r.json()["expiryDateTime"].startswith("2030-10-31T11:00:00")


def test_role_is_presenter_without_presenters_is_accepted(api, meeting):
    """Assumption (undocumented): accepted; then only the organizer presents."""
    r = api.request("PATCH", path(meeting), token=api.app_token(),
                    json={"allowedPresenters": "roleIsPresenter"})
    assert r.status_code == 200 and r.json()["allowedPresenters"] == "roleIsPresenter"
    assert all(a["role"] != "presenter" for a in r.json()["participants"]["attendees"])


def test_errors_are_terse_by_default(api, meeting):
    r = api.request("PATCH", path(meeting), token=api.app_token(),
                    json={"startDateTime": "2030-05-02T10:00:00Z"})
    assert graph_error(r)["message"] == "An error has occurred."
    r = api.request("PATCH", path(meeting), token=api.app_token(), json={"colour": "blue"})
    assert "does not exist on type" in graph_error(r)["message"]  # OData's own words, as Graph's


def test_stats_count_requests_per_method_and_route(directory_file):
    """So that a test can prove a command sent no write."""
    from bulkmeet.emulator import Emulator, EmulatorOptions
    from tests.emulator.helpers import Api

    with Emulator(EmulatorOptions(directory=directory_file)) as emu:
        api = Api(emu)
        m = api.create(ADA).json()
        p = path(m)
        api.request("GET", p, token=api.app_token())
        api.request("GET", f"/v1.0/users/{UPN[ADA]}?$select=id", token=api.app_token())
        before = api.request("GET", "/_emulator/stats").json()
        assert before["graph_writes"] == 1 and before["by_method"] == {"GET": 2, "POST": 1}
        api.request("PATCH", p, token=api.app_token(), json={"subject": "x"})
        api.request("DELETE", p, token=api.app_token())
        stats = api.request("GET", "/_emulator/stats").json()
        assert stats["by_method"] == {"DELETE": 1, "GET": 2, "PATCH": 1, "POST": 1}
        assert stats["graph_writes"] == 3
        assert stats["by_route"]["PATCH /v1.0/users/{id}/onlineMeetings/{id}"] == 1
        assert stats["by_route"]["DELETE /v1.0/users/{id}/onlineMeetings/{id}"] == 1
        assert (stats["created"], stats["updated"], stats["deleted"]) == (1, 1, 1)
        api.close()
