"""The one home of identifier rules: GUIDs (object, client, tenant ids), tenants, e-mail/UPNs.

Config validation, sign-in and the runner used to carry their own copies, and they disagreed
(config accepted ``organizations``, sign-in refused it). Each rule is written once here, with
the sentence that explains it; callers add where the value came from. A leaf module: it imports
nothing of bulkmeet, so every layer may use it.
"""
from __future__ import annotations

import re

# A GUID as Entra shows it; braces ({...}, as PowerShell and the registry print it) are accepted
# where a person types an id and dropped by ``bare_guid``. Group 1 is the bare GUID.
_HEX_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GUID_RE = re.compile(rf"^\{{?({_HEX_GUID})\}}?$")

# Pragmatic, not RFC 5322: one @, no spaces or list separators, a dotted domain without empty
# labels. Used for organizer UPNs and attendee addresses.
EMAIL_RE = re.compile(
    r"^[^\s@<>()\[\],;:\"]+@(?!-)[^\s@<>()\[\],;:\"._]+(?:\.[^\s@<>()\[\],;:\"._]+)+$"
)

# A verified domain of a tenant (school.example, contoso.onmicrosoft.com): DNS labels, a dot,
# and a top-level label of letters.
_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")

# What the identity platform accepts in place of a tenant, and what bulkmeet does with each.
ORGANIZATIONS = "organizations"  # any work or school account: a person signing in only
PERSONAL_ACCOUNT_TENANTS = ("common", "consumers")  # admit Microsoft accounts: never useful here


def is_guid(text: str) -> bool:
    return bool(GUID_RE.match(text.strip()))


def bare_guid(text: str) -> str | None:
    """The lower-case GUID without braces, or None when ``text`` is not a GUID."""
    m = GUID_RE.match(text.strip())
    return m.group(1).lower() if m else None


def is_email(text: str) -> bool:
    return bool(EMAIL_RE.match(text.strip()))


def is_domain(text: str) -> bool:
    return bool(_DOMAIN_RE.match(text.strip()))


def normalise_tenant(tenant: str) -> str:
    """A tenant as it goes into the authority URL: a bare lower-case GUID, or the name as given."""
    return bare_guid(tenant) or tenant.strip()


def tenant_problem(tenant: str, *, delegated: bool) -> str | None:
    """Why ``tenant`` cannot be used as tenant_id (a sentence fragment after the value), or None.

    The identity platform takes a tenant GUID, any verified domain of the tenant, or
    ``organizations`` (any work or school account: for a person signing in; an app signs in to
    one tenant, so client credentials need the tenant itself). ``common`` and ``consumers`` let
    personal Microsoft accounts in, which cannot organise meetings for a school: refused.
    """
    value = tenant.strip()
    lowered = value.lower()
    if lowered in PERSONAL_ACCOUNT_TENANTS:
        return (f"lets personal Microsoft accounts sign in, which bulkmeet does not support: {_USE} "
                f"(or \"{ORGANIZATIONS}\" with mode = \"delegated\")")
    if lowered == ORGANIZATIONS:
        if delegated:
            return None
        return ("works only when a person signs in (mode = \"delegated\"); an app signs in to "
                f"its own tenant: {_USE}")
    if _DOMAIN_RE.match(value) or GUID_RE.match(value):
        return None
    return f"is neither a GUID nor a domain such as contoso.onmicrosoft.com: {_USE}"


def client_id_problem(client_id: str) -> str | None:
    """Why ``client_id`` is not an Application (client) ID, or None."""
    if GUID_RE.match(client_id.strip()):
        return None
    return ("is not a GUID: use the Application (client) ID from the app registration's Overview "
            "page (not the secret, not the object ID)")


# What a person copies as an id is made of these: GUID digits and braces, domain letters, '.', '-'.
_ID_CHARS = re.compile(r"^[0-9A-Za-z.{}-]+$")
_GUID_CHARS = re.compile(r"^[0-9A-Fa-f{}-]+$")
NOT_SHOWN = "(the value given is not shown: it may be a secret)"


def shown_id(value: str, limit: int = 38) -> str:
    """An id as typed, quoted for a message, or ``NOT_SHOWN`` when it might be a pasted secret.

    Secrets never reach a message, and a message is not the place to guess which string is one,
    so the rule is which values ARE echoed: those made only of the characters of a GUID or a
    domain (letters, digits, '.', '-', and the braces of {GUID}), at most ``limit`` characters
    (38, a braced GUID; pass 253, a domain, for a tenant), and not a mix of upper- and
    lower-case letters with digits. An Entra secret has '~' (today) or one of ``_[]?@:=/+`` or
    that mix (before 2021); an id a person copies is one case (a GUID) or lower-case (a domain).
    So "my-app" is echoed and "Xy78Q~..." or "n]Fc@kh?..." is not. Spaces are not id characters
    either: "contoso tenant" is not echoed (the setting named in the message is enough to find it).
    """
    text = value.strip()
    if not _ID_CHARS.match(text) or len(text) > limit or _looks_generated(text):
        return NOT_SHOWN
    return f"\"{text}\""


def shown_tenant(value: str) -> str:
    """A tenant for a message: ``shown_id``, and only when it looks like a domain or a GUID.

    The words the identity platform takes (organizations, common, consumers) are shown; any
    other value must have a '.' (a domain, perhaps mistyped) or be hex digits with a '-' (a GUID
    with a digit missing), else ``NOT_SHOWN``: a secret pasted there has neither.
    """
    text = value.strip()
    if text.lower() in (ORGANIZATIONS, *PERSONAL_ACCOUNT_TENANTS):
        return f"\"{text}\""
    if "." not in text and not ("-" in text and _GUID_CHARS.match(text)):
        return NOT_SHOWN
    return shown_id(text, 253)


def _looks_generated(text: str) -> bool:
    """Upper- and lower-case letters and digits together: how a generated secret looks."""
    return (any(c.isupper() for c in text) and any(c.islower() for c in text)
            and any(c.isdigit() for c in text))


def tenant_error(setting: str, tenant: str, *, delegated: bool) -> str | None:
    """The sentence (after "FILE: ") for an unusable tenant id, e.g. setting "[auth] tenant_id"."""
    problem = tenant_problem(tenant, delegated=delegated)
    return f"{setting} {shown_tenant(tenant)} {problem}." if problem else None


def client_id_error(setting: str, client_id: str) -> str | None:
    """The sentence (after "FILE: ") for a client id that is not an Application (client) ID."""
    problem = client_id_problem(client_id)
    return f"{setting} {shown_id(client_id)} {problem}." if problem else None


_USE = ("use the Directory (tenant) ID GUID from the app registration's Overview page, or the "
        "tenant's domain (contoso.onmicrosoft.com)")
