"""PATCH of an onlineMeeting: every property Graph v1.0 lists as updatable, with its rules.

From the v1.0 update page: start and end change together; ``participants`` replaces the whole
attendee list (never a diff); the organizer cannot change; ``joinMeetingIdSettings`` (the
passcode) and the other read-only properties cannot be set. Meeting options (lobby, presenters,
chat, recording, ...) are set here, since createOrGet ignores them. An update pushes
``expiryDateTime`` out to 60 days after the (new) end or after now, whichever is later.

Assumption (not documented by Microsoft): ``allowedPresenters = roleIsPresenter`` with no
attendee in the presenter role is accepted, as the Teams client accepts it; then only the
organizer presents. A client that wants presenters must say so itself.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from bulkmeet.emulator.directory import Tenant, User
from bulkmeet.emulator.meetings import (
    EXPIRY_AFTER,
    ODATA_TYPE,
    BodyError,
    ODataError,
    check_keys,
    expect_object,
    graph_time,
    opt_str,
    parse_time,
    participants_from,
    same_person,
)

BOOLEAN_OPTIONS = (
    "isEntryExitAnnounced", "allowTeamworkReactions", "allowAttendeeToEnableCamera",
    "allowAttendeeToEnableMic", "recordAutomatically", "allowRecording", "allowTranscription",
    "allowBreakoutRooms", "allowPowerPointSharing", "allowWhiteboard",
    "allowCopyingAndSharingMeetingContent", "allowParticipantsToChangeName",
)
ENUM_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "allowedPresenters": ("onlineMeetingPresenters",
                          ("everyone", "organization", "roleIsPresenter", "organizer", "unknownFutureValue")),
    "allowMeetingChat": ("meetingChatMode", ("enabled", "disabled", "limited", "unknownFutureValue")),
    "allowedLobbyAdmitters": ("allowedLobbyAdmitterRoles",
                              ("organizerAndCoOrganizersAndPresenters", "organizerAndCoOrganizers",
                               "unknownFutureValue")),
    "allowLiveShare": ("meetingLiveShareOptions", ("enabled", "disabled", "unknownFutureValue")),
    "shareMeetingChatHistoryDefault": ("meetingChatHistoryDefaultMode",
                                       ("none", "all", "unknownFutureValue")),
}
LOBBY_SCOPES = ("organizer", "organization", "organizationAndFederated", "everyone",
                "invited", "organizationExcludingGuests", "unknownFutureValue")
BROADCAST_AUDIENCES = ("roleIsAttendee", "organization", "everyone", "unknownFutureValue")
OBJECT_OPTIONS = ("lobbyBypassSettings", "watermarkProtection", "broadcastSettings", "chatRestrictions")
PATCHABLE = frozenset({"startDateTime", "endDateTime", "subject", "participants", "externalId",
                       *BOOLEAN_OPTIONS, *ENUM_OPTIONS, *OBJECT_OPTIONS})
READ_ONLY = frozenset({
    "id", "joinWebUrl", "creationDateTime", "videoTeleconferenceId", "joinInformation",
    "audioConferencing", "joinMeetingIdSettings", "chatInfo", "joinUrl", "isBroadcast",
    "meetingOptionsWebUrl", "expiryDateTime", "meetingType", "isEndToEndEncryptionEnabled",
    "meetingTemplateId", "autoAdmittedUsers",
})


def expiry_for(end: datetime, now: datetime) -> str:
    return graph_time(max(end, now) + EXPIRY_AFTER)


def apply_patch(meeting: dict[str, Any], body: Any, tenant: Tenant, organizer: User,
                now: datetime) -> dict[str, Any]:
    """The updated meeting (a new dict), or ``BodyError`` as Graph's 400."""
    if not isinstance(body, dict):
        raise ODataError("The request body must be a JSON object.")
    for key in body:
        if key == ODATA_TYPE:
            continue
        if key in READ_ONLY:
            raise BodyError(f"The property '{key}' is read-only and cannot be updated.")
        if key not in PATCHABLE:
            raise ODataError(
                f"The property '{key}' does not exist on type 'microsoft.graph.onlineMeeting'. "
                "Make sure to only use property names that are defined by the type."
            )
    out = dict(meeting)
    if "externalId" in body and body["externalId"] != meeting.get("externalId"):
        raise BodyError("externalId cannot be changed; createOrGet a new meeting instead.")
    _times(out, body)
    if "subject" in body:
        out["subject"] = opt_str(body, "subject", "onlineMeeting")
    if body.get("participants") is not None:
        org, att = participants_from(body["participants"], tenant)
        if org is not None and not same_person(org, organizer):
            raise BodyError("The organizer of a meeting cannot be changed.")
        if att is not None:  # attendee changes send the whole list
            participants = dict(out["participants"])
            participants["attendees"] = att
            out["participants"] = participants
    for key, (type_name, allowed) in ENUM_OPTIONS.items():
        if key in body:
            if body[key] not in allowed:
                raise ODataError(f"Requested value '{body[key]}' was not found in enum "
                                 f"'microsoft.graph.{type_name}' (property '{key}').")
            out[key] = body[key]
    for key in BOOLEAN_OPTIONS:
        if key in body:
            if not isinstance(body[key], bool):
                raise ODataError(f"Cannot convert {body[key]!r} to 'Edm.Boolean' (property '{key}').")
            out[key] = body[key]
    if "lobbyBypassSettings" in body:
        out["lobbyBypassSettings"] = _lobby(body["lobbyBypassSettings"], out.get("lobbyBypassSettings") or {})
    if "watermarkProtection" in body:
        out["watermarkProtection"] = _flags(body["watermarkProtection"], "watermarkProtection",
                                            ("isEnabledForContentSharing", "isEnabledForVideo"),
                                            "microsoft.graph.watermarkProtectionValues")
    if "chatRestrictions" in body:
        out["chatRestrictions"] = _flags(body["chatRestrictions"], "chatRestrictions",
                                         ("allowTextOnly",), "microsoft.graph.chatRestrictions")
    if "broadcastSettings" in body:
        out["broadcastSettings"] = _broadcast(body["broadcastSettings"])
    end = parse_time(out["endDateTime"], "endDateTime")
    out["expiryDateTime"] = max(out.get("expiryDateTime") or "", expiry_for(end, now))
    return out


def _times(out: dict[str, Any], body: dict[str, Any]) -> None:
    has_start, has_end = body.get("startDateTime") is not None, body.get("endDateTime") is not None
    if has_start != has_end:
        raise BodyError("startDateTime and endDateTime must be updated together; send both to "
                        "change the time.")
    if has_start:
        start = parse_time(body["startDateTime"], "startDateTime")
        end = parse_time(body["endDateTime"], "endDateTime")
        if end < start:
            raise BodyError("endDateTime is earlier than startDateTime.")
        out["startDateTime"], out["endDateTime"] = graph_time(start), graph_time(end)


def _lobby(raw: Any, current: dict[str, Any]) -> dict[str, Any]:
    lobby = expect_object(raw, "lobbyBypassSettings")
    check_keys(lobby, {"scope", "isDialInBypassEnabled"}, "microsoft.graph.lobbyBypassSettings")
    merged = dict(current)
    if "scope" in lobby:
        if lobby["scope"] not in LOBBY_SCOPES:
            raise ODataError(f"Requested value '{lobby['scope']}' was not found in enum "
                             "'microsoft.graph.lobbyBypassScope'.")
        merged["scope"] = lobby["scope"]
    if "isDialInBypassEnabled" in lobby:
        if not isinstance(lobby["isDialInBypassEnabled"], bool):
            raise ODataError("Cannot convert the literal to 'Edm.Boolean' (property "
                             "'lobbyBypassSettings.isDialInBypassEnabled').")
        merged["isDialInBypassEnabled"] = lobby["isDialInBypassEnabled"]
    return merged


def _flags(raw: Any, where: str, keys: tuple[str, ...], type_name: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    obj = expect_object(raw, where)
    check_keys(obj, set(keys), type_name)
    for key in keys:
        if key in obj and not isinstance(obj[key], bool):
            raise ODataError(f"Cannot convert {obj[key]!r} to 'Edm.Boolean' (property '{where}.{key}').")
    return {key: obj.get(key, False) for key in keys}


def _broadcast(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    obj = expect_object(raw, "broadcastSettings")
    flags = ("isRecordingEnabled", "isAttendeeReportEnabled", "isQuestionAndAnswerEnabled",
             "isVideoOnDemandEnabled")
    check_keys(obj, {"allowedAudience", "captions", *flags}, "microsoft.graph.broadcastMeetingSettings")
    audience = obj.get("allowedAudience", "organization")
    if audience not in BROADCAST_AUDIENCES:
        raise ODataError(f"Requested value '{audience}' was not found in enum "
                         "'microsoft.graph.broadcastMeetingAudience'.")
    out: dict[str, Any] = {"allowedAudience": audience}
    for key in flags:
        if key in obj and not isinstance(obj[key], bool):
            raise ODataError(f"Cannot convert {obj[key]!r} to 'Edm.Boolean' (property "
                             f"'broadcastSettings.{key}').")
        out[key] = obj.get(key, False)
    captions = obj.get("captions")
    if captions is not None:
        cap = expect_object(captions, "broadcastSettings.captions")
        check_keys(cap, {"spokenLanguage", "translationLanguages"},
                   "microsoft.graph.broadcastMeetingCaptionSettings")
        langs = cap.get("translationLanguages") or []
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise ODataError("'broadcastSettings.captions.translationLanguages' must be an array of strings.")
        captions = {"spokenLanguage": opt_str(cap, "spokenLanguage", "broadcastSettings.captions"),
                    "translationLanguages": langs}
    out["captions"] = captions
    return out
