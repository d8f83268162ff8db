"""onlineMeeting bodies: strict parsing of what clients send, realistic meetings in return.

Graph's OData layer rejects unknown properties, wrong types and unparsable dates with 400, and
the createOrGet docs add their own rules (externalId required; end needs a start; end not before
start; chatInfo beta-only). Parsing here is as strict, so a client bug shows up against the
emulator rather than against the customer's tenant.
"""
from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bulkmeet.emulator.directory import Tenant, User

ROLES = ("attendee", "presenter", "producer", "coorganizer")
CREATE_OR_GET_PARAMS = frozenset(
    {"externalId", "startDateTime", "endDateTime", "subject", "participants", "chatInfo"}
)
ODATA_TYPE = "@odata.type"


class BodyError(ValueError):
    """A request body Graph refuses with 400 BadRequest; str() is the helpful explanation.

    Graph itself says only "An error has occurred." for these (createOrGet and update rules), so
    that is what the emulator answers unless it runs with helpful errors.
    """

    realistic: str | None = None  # what Graph says; None = the vague default


class ODataError(BodyError):
    """Refused by Graph's OData layer (unknown property, wrong type, bad enum): Graph's message
    is specific here, and the emulator gives it always."""

    @property
    def realistic(self) -> str:  # type: ignore[override]
        return str(self)


# --------------------------------------------------------------------------- helpers


def graph_time(value: datetime) -> str:
    """Graph's format: UTC, seven fractional digits, Z."""
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond:06d}0Z"


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ODataError(
            f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset' "
            f"(property '{name}')."
        )
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ODataError(
            f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset' "
            f"(property '{name}')."
        ) from None
    if "T" not in text and " " not in text:
        raise ODataError(
            f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset': "
            f"'{name}' needs a date and a time."
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Graph reads an offset-less time as UTC
    return parsed.astimezone(UTC)


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ODataError(f"'{where}' must be a JSON object.")
    return value


def check_keys(obj: dict[str, Any], allowed: frozenset[str] | set[str], type_name: str) -> None:
    for key in obj:
        if key not in allowed and key != ODATA_TYPE and not key.endswith("@odata.type"):
            raise ODataError(
                f"The property '{key}' does not exist on type '{type_name}'. Make sure to only "
                "use property names that are defined by the type."
            )


def opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ODataError(f"Cannot convert {value!r} to 'Edm.String' (property '{where}.{key}').")
    return value


def _participant(raw: Any, where: str, tenant: Tenant, *, organizer: bool) -> dict[str, Any]:
    obj = expect_object(raw, where)
    check_keys(obj, {"identity", "upn", "role"}, "microsoft.graph.meetingParticipantInfo")
    upn = opt_str(obj, "upn", where)
    role = obj.get("role")
    if role is not None and role not in ROLES:
        raise ODataError(
            f"Requested value '{role}' was not found in enum 'microsoft.graph.onlineMeetingRole' "
            f"({where}.role); use one of {', '.join(ROLES)}."
        )
    user_id = None
    display_name = None
    identity = obj.get("identity")
    if identity is not None:
        ident = expect_object(identity, f"{where}.identity")
        check_keys(ident, {"user", "application", "device", "phone", "guest",
                            "encrypted", "onPremises", "acsUser", "spoolUser", "azureCommunicationServicesUser"},
                    "microsoft.graph.identitySet")
        user = ident.get("user")
        if user is not None:
            u = expect_object(user, f"{where}.identity.user")
            check_keys(u, {"id", "displayName", "tenantId", "identityProvider"},
                        "microsoft.graph.identity")
            user_id = opt_str(u, "id", f"{where}.identity.user")
            display_name = opt_str(u, "displayName", f"{where}.identity.user")
    if not organizer and not user_id and not upn:
        raise BodyError(f"{where} needs 'upn' or 'identity.user.id'.")
    resolved: User | None = None
    if user_id:
        resolved = tenant.user_by_id(user_id)
    elif upn:
        resolved = tenant.user_by_upn(upn)
    return {
        "upn": upn or (resolved.user_principal_name if resolved else None),
        "role": role if role is not None else ("presenter" if organizer else "attendee"),
        "identity": {"user": {
            "id": (resolved.id if resolved else user_id),
            "displayName": display_name or (resolved.display_name if resolved else None),
            "tenantId": tenant.id if resolved else None,
            "identityProvider": "AAD",
        }},
    }


def participants_from(raw: Any, tenant: Tenant) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(organizer given or None, attendees given or None)."""
    obj = expect_object(raw, "participants")
    check_keys(obj, {"organizer", "attendees", "producers", "contributors"},
                "microsoft.graph.meetingParticipants")
    organizer = None
    if obj.get("organizer") is not None:
        organizer = _participant(obj["organizer"], "participants.organizer", tenant, organizer=True)
    attendees = None
    if "attendees" in obj:
        raw_att = obj["attendees"]
        if raw_att is None:
            attendees = []
        elif not isinstance(raw_att, list):
            raise ODataError("'participants.attendees' must be a JSON array.")
        else:
            attendees = [
                _participant(a, f"participants.attendees[{i}]", tenant, organizer=False)
                for i, a in enumerate(raw_att)
            ]
    return organizer, attendees


def _chat_info(raw: Any) -> dict[str, Any]:
    obj = expect_object(raw, "chatInfo")
    check_keys(obj, {"threadId", "messageId", "replyChainMessageId"}, "microsoft.graph.chatInfo")
    for key in ("threadId", "messageId", "replyChainMessageId"):
        opt_str(obj, key, "chatInfo")
    return {"threadId": obj.get("threadId"), "messageId": obj.get("messageId") or "0",
            "replyChainMessageId": obj.get("replyChainMessageId")}


def same_person(given: dict[str, Any], organizer: User) -> bool:
    gid = (given["identity"]["user"].get("id") or "").lower()
    gupn = (given.get("upn") or "").lower()
    return (not gid or gid == organizer.id) and (not gupn or gupn == organizer.user_principal_name.lower())


# --------------------------------------------------------------------------- createOrGet


class CreateRequest:
    __slots__ = ("external_id", "start", "end", "subject", "attendees", "chat_info")

    def __init__(self, external_id: str, start: datetime | None, end: datetime | None,
                 subject: str | None, attendees: list[dict[str, Any]],
                 chat_info: dict[str, Any] | None) -> None:
        self.external_id = external_id
        self.start = start
        self.end = end
        self.subject = subject
        self.attendees = attendees
        self.chat_info = chat_info


def parse_create_or_get(body: Any, version: str, tenant: Tenant, organizer: User) -> CreateRequest:
    if not isinstance(body, dict):
        raise ODataError("The request body must be a JSON object with at least 'externalId'.")
    for key in body:
        if key not in CREATE_OR_GET_PARAMS and key != ODATA_TYPE:
            raise ODataError(
                f"The parameter '{key}' in the request payload is not a valid parameter for the "
                "operation 'createOrGet'."
            )
    external_id = body.get("externalId")
    if not isinstance(external_id, str) or not external_id.strip():
        raise BodyError("The parameter 'externalId' is required and must be a non-empty string.")
    subject = opt_str(body, "subject", "createOrGet")
    start = parse_time(body["startDateTime"], "startDateTime") if body.get("startDateTime") is not None else None
    end = parse_time(body["endDateTime"], "endDateTime") if body.get("endDateTime") is not None else None
    if end is not None and start is None:
        raise BodyError("endDateTime was given without startDateTime.")
    if start is not None and end is not None and end < start:
        raise BodyError("endDateTime is earlier than startDateTime.")
    attendees: list[dict[str, Any]] = []
    if body.get("participants") is not None:
        org, att = participants_from(body["participants"], tenant)
        if org is not None and not same_person(org, organizer):
            raise BodyError(
                "participants.organizer must be the user the meeting is created for (the user "
                "in the request path, or the signed-in user for /me)."
            )
        attendees = att or []
    chat = None
    if body.get("chatInfo") is not None:
        if version != "beta":
            raise BodyError(
                "chatInfo is supported only on the beta endpoint of createOrGet; send the request "
                "to /beta or leave chatInfo out."
            )
        chat = _chat_info(body["chatInfo"])
    return CreateRequest(external_id, start, end, subject, attendees, chat)


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** (n - 1), 10 ** n))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


EXPIRY_AFTER = timedelta(days=60)  # Graph: a meeting expires 60 days after its end (or last use)
# Graph's defaults for the v1.0 options of a new meeting (createOrGet sets none of them).
MEETING_OPTION_DEFAULTS: dict[str, Any] = {
    "isEntryExitAnnounced": True,
    "allowedPresenters": "everyone",
    "allowedLobbyAdmitters": "organizerAndCoOrganizersAndPresenters",
    "allowMeetingChat": "enabled",
    "allowTeamworkReactions": True,
    "allowAttendeeToEnableMic": True,
    "allowAttendeeToEnableCamera": True,
    "allowRecording": True,
    "allowTranscription": True,
    "allowBreakoutRooms": True,
    "allowLiveShare": "enabled",
    "allowPowerPointSharing": True,
    "allowWhiteboard": True,
    "allowCopyingAndSharingMeetingContent": True,
    "allowParticipantsToChangeName": False,
    "recordAutomatically": False,
    "shareMeetingChatHistoryDefault": "none",
    "isEndToEndEncryptionEnabled": False,
    "watermarkProtection": None,
    "chatRestrictions": None,
    "broadcastSettings": None,
    "meetingTemplateId": None,
    "meetingType": None,
}
_PASSCODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def new_meeting(req: CreateRequest, tenant: Tenant, organizer: User, rng: random.Random,
                now: datetime) -> dict[str, Any]:
    """A meeting shaped like Graph's v1.0 onlineMeeting, with realistic made-up values."""
    start = req.start or now
    end = req.end or (start + timedelta(hours=1))
    thread_token = _b64(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    thread_id = f"19:meeting_{thread_token}@thread.v2"
    meeting_id = _b64(f"1*{organizer.id}*0**{thread_id}")
    # The thread token is base64url and the ids are GUIDs, so only these characters need escapes.
    join_url = (
        f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread_token}%40thread.v2/0"
        f"?context=%7b%22Tid%22%3a%22{tenant.id}%22%2c%22Oid%22%3a%22{organizer.id}%22%7d"
    )
    conference_id = _digits(rng, 9)
    join_meeting_id = _digits(rng, rng.randint(12, 15))
    passcode = "".join(rng.choices(_PASSCODE_ALPHABET, k=6))
    bridge = uuid.UUID(int=rng.getrandbits(128), version=4)
    subject = req.subject
    chat = req.chat_info or {"threadId": thread_id, "messageId": "0", "replyChainMessageId": None}
    return {
        "id": meeting_id,
        "creationDateTime": graph_time(now),
        "startDateTime": graph_time(start),
        "endDateTime": graph_time(end),
        "joinWebUrl": join_url,
        "subject": subject,
        "isBroadcast": False,
        "autoAdmittedUsers": "everyoneInCompany",
        **MEETING_OPTION_DEFAULTS,
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "meetingOptionsWebUrl": (
            f"https://teams.microsoft.com/meetingOptions/?organizerId={organizer.id}"
            f"&tenantId={tenant.id}&threadId={thread_id}&messageId=0&language=en-US"),
        "expiryDateTime": graph_time(max(end, now) + EXPIRY_AFTER),
        "videoTeleconferenceId": _digits(rng, 10),
        "externalId": req.external_id,
        "joinMeetingIdSettings": {
            "isPasscodeRequired": True,
            "joinMeetingId": join_meeting_id,
            "passcode": passcode,
        },
        "joinInformation": _join_information(join_url),
        "audioConferencing": {
            "conferenceId": conference_id,
            "tollNumber": "+1 425-555-0100",
            "tollFreeNumber": "+1 800-555-0199",
            "tollNumbers": ["+1 425-555-0100"],
            "tollFreeNumbers": ["+1 800-555-0199"],
            "dialinUrl": f"https://dialin.teams.microsoft.com/{bridge}?id={conference_id}",
        },
        "chatInfo": chat,
        "participants": _participants(tenant, organizer, req.attendees),
    }


def _join_information(join_url: str) -> dict[str, Any]:
    """The invitation HTML Graph returns, as a data: URL with the join link escaped inside."""
    return {
        "content": "data:text/html,%3cdiv+class%3d%22me-email-text%22%3e%3ca+href%3d%22"
                   + join_url.replace("%", "%25").replace(":", "%3a").replace("/", "%2f")
                   .replace("?", "%3f").replace("=", "%3d")
                   + "%22%3eJoin+the+meeting+now%3c%2fa%3e%3c%2fdiv%3e",
        "contentType": "html",
    }


def _participants(tenant: Tenant, organizer: User, attendees: list[Any]) -> dict[str, Any]:
    return {
        "organizer": {
            "upn": organizer.user_principal_name,
            "role": "presenter",
            "identity": {"user": {
                "id": organizer.id, "displayName": None, "tenantId": tenant.id,
                "identityProvider": "AAD",
            }},
        },
        "attendees": attendees,
        "producers": [],
        "contributors": [],
    }


# --------------------------------------------------------------------------- users

USER_PROPERTIES = ("businessPhones", "displayName", "givenName", "jobTitle", "mail",
                   "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                   "userPrincipalName", "id")
SELECTABLE = frozenset(USER_PROPERTIES) | {"accountEnabled", "usageLocation", "assignedLicenses"}


def user_json(user: User, select: list[str] | None, version: str) -> dict[str, Any]:
    given, _, surname = (user.display_name or "").partition(" ")
    full: dict[str, Any] = {
        "businessPhones": [], "displayName": user.display_name, "givenName": given or None,
        "jobTitle": None, "mail": user.mail, "mobilePhone": None, "officeLocation": None,
        "preferredLanguage": None, "surname": surname or None,
        "userPrincipalName": user.user_principal_name, "id": user.id,
        "accountEnabled": True, "usageLocation": "US",
        "assignedLicenses": [{"disabledPlans": [], "skuId": "94763226-9b3c-4e75-a931-5c89701abe66"}]
        if user.licensed else [],
    }
    base = f"https://graph.microsoft.com/{version}/$metadata#users"
    if select:
        out: dict[str, Any] = {"@odata.context": f"{base}({','.join(select)})/$entity"}
        for name in select:
            out[name] = full[name]
        return out
    out = {"@odata.context": f"{base}/$entity"}
    out.update({k: full[k] for k in USER_PROPERTIES})
    return out
