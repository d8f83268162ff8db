"""Sign-in failures as one sentence each: what happened and what to change.

The identity platform answers with an AADSTS code and a long description carrying trace and
correlation ids; an ops user needs the code (to search for) and the fix. Messages name only what
``Context`` holds (ids, hosts, where the credential came from, the login command), never a secret.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from bulkmeet.config import Config
from bulkmeet.http import tls_failure_message

_AADSTS = re.compile(r"AADSTS(\d+)")


def where(config_path: object) -> str:
    """How a message names the config file."""
    return str(config_path) if config_path else "the config"


def login_command(config: Config) -> str:
    """The command that fixes a missing or expired delegated sign-in, ready to paste."""
    target = shlex.quote(str(config.path)) if config.path else "FILE"
    return f"bulkmeet login --config {target}"


@dataclass(frozen=True)
class Context:
    """What a message may name: ids, hosts, where the credential came from. No secrets."""

    tenant: str
    client: str
    authority: str
    ca: str
    login: str
    source: str = "the environment"
    thumbprint: str = "(unknown)"
    cache: str = ""


_AADSTS_MESSAGES: dict[int, str] = {
    7000215: "The client secret for app {client} is wrong (AADSTS7000215): copy the secret's "
             "Value, not its Secret ID, from the app registration's Certificates & secrets page "
             "into {source}.",
    7000222: "The client secret for app {client} has expired (AADSTS7000222): create a new one "
             "under the app registration's Certificates & secrets and put its Value into {source}.",
    90002: "Tenant '{tenant}' was not found (AADSTS90002): set tenant_id in [auth] (or "
           "AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page.",
    900023: "'{tenant}' is not a valid tenant (AADSTS900023): set tenant_id in [auth] (or "
            "AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page.",
    700016: "App '{client}' was not found in tenant '{tenant}' (AADSTS700016): check client_id "
            "(Application (client) ID) and tenant_id in [auth], and that an administrator has "
            "granted admin consent in this tenant.",
    7000229: "App '{client}' has no service principal in tenant '{tenant}' (AADSTS7000229): an "
             "administrator must grant admin consent to the app (API permissions, Grant admin consent).",
    700027: "Microsoft Entra rejected the certificate for app {client} (AADSTS700027): upload the "
            "certificate with thumbprint {thumbprint} under the app registration's Certificates & "
            "secrets, and make sure {source} holds its private key.",
    700024: "The signed sign-in request was outside its valid time (AADSTS700024): this "
            "machine's clock is probably wrong; sync it (timedatectl set-ntp true) and retry.",
    7000218: "App '{client}' does not allow device-code sign-in (AADSTS7000218): in the app "
             "registration open Authentication and set 'Allow public client flows' to Yes.",
    50194: "App '{client}' accepts sign-ins from its own tenant only (AADSTS50194): set tenant_id "
           "in [auth] to the Directory (tenant) ID or the tenant's domain instead of "
           "'{tenant}', or make the app registration multi-tenant.",
    50059: "The sign-in service could not tell which tenant app '{client}' signs in to "
           "(AADSTS50059): set tenant_id in [auth] to the Directory (tenant) ID or the tenant's "
           "domain.",
    7000112: "App '{client}' is disabled in tenant '{tenant}' (AADSTS7000112): ask an "
             "administrator to enable its enterprise application.",
    65001: "App '{client}' has not been granted the Graph permissions it asks for (AADSTS65001): "
           "an administrator must grant admin consent under API permissions, then try again.",
    50034: "That account does not exist in tenant '{tenant}' (AADSTS50034): run `{login}` and "
           "sign in with the organizer's work account.",
    50020: "That account is not a member of tenant '{tenant}' (AADSTS50020): run `{login}` and "
           "sign in with an account of this tenant.",
}
# A saved delegated sign-in that can no longer be refreshed without the person.
_RELOGIN_CODES = {70008, 700082, 700084, 50173, 70043, 50133, 50089, 135011}
_INTERACTION_CODES = {50076, 50079, 50158, 53003, 50097, 50105, 50072}
_SCOPE_CODES = {70011, 1002012, 65005, 500011}


def aad_code(result: Mapping[str, Any]) -> int | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes:
        try:
            return int(codes[0])
        except (TypeError, ValueError):
            pass
    m = _AADSTS.search(str(result.get("error_description") or ""))
    return int(m.group(1)) if m else None


def _short_description(description: str, limit: int = 160) -> str:
    """The first sentence of an AADSTS description, without trace/correlation ids and timestamps."""
    text = " ".join(description.split())
    text = _AADSTS.sub("", text, count=1).lstrip(": ")
    for marker in (" Trace ID:", " Correlation ID:", " Timestamp:"):
        text = text.split(marker, 1)[0]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def aad_error_message(result: Mapping[str, Any], ctx: Context) -> str:
    """One sentence for an identity-platform error response: what happened, what to do."""
    code = aad_code(result)
    error = str(result.get("error") or "error")
    values = {"tenant": ctx.tenant, "client": ctx.client, "source": ctx.source,
              "thumbprint": ctx.thumbprint, "login": ctx.login}
    if code in _AADSTS_MESSAGES:
        return _AADSTS_MESSAGES[code].format(**values)
    tag = f"AADSTS{code}" if code else error
    if code in _INTERACTION_CODES or error == "interaction_required":
        return (f"Microsoft Entra needs the organizer to sign in again (MFA or a Conditional Access "
                f"policy, {tag}): run `{ctx.login}` once as the organizer.")
    if code in _RELOGIN_CODES or error == "invalid_grant":
        # Any other refusal of a refresh token: only a new sign-in helps.
        return (f"The saved sign-in{_in_cache(ctx)} has expired or was revoked ({tag}): run "
                f"`{ctx.login}` once as the organizer.")
    if code in _SCOPE_CODES:
        return (f"The sign-in service rejected bulkmeet's Graph permissions for app {ctx.client} "
                f"({tag}): add OnlineMeetings permissions under API permissions and grant admin consent.")
    if error in ("authorization_declined", "access_denied"):
        return f"The sign-in was declined in the browser: run `{ctx.login}` again and approve it."
    if error in ("expired_token", "code_expired"):
        return (f"The sign-in code expired before it was used: run `{ctx.login}` again and enter "
                "the code promptly.")
    if error == "bad_verification_code":
        return (f"The sign-in service did not accept the code that was entered: run `{ctx.login}` "
                "again and type the new code exactly as shown.")
    short = _short_description(str(result.get("error_description") or ""))
    detail = f"{tag}: {short}" if short else tag
    return (f"Microsoft Entra refused the token request for app {ctx.client} in tenant "
            f"{ctx.tenant} ({detail}): check tenant_id, client_id and the credential in [auth].")


def _in_cache(ctx: Context) -> str:
    return f" in {ctx.cache}" if ctx.cache else ""


def network_message(exc: BaseException, ctx: Context) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return tls_failure_message(f"the sign-in service {ctx.authority}", ctx.ca)
    if isinstance(exc, requests.exceptions.Timeout):
        return (f"The sign-in service {ctx.authority} did not answer in time: check the network "
                "and proxy (HTTPS_PROXY), then retry.")
    return (f"Cannot reach the sign-in service {ctx.authority}: check the network, the proxy "
            "(HTTPS_PROXY/NO_PROXY) and authority_host in [auth].")

