"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` headers of every signed delivery.

Called by the webhook handler for each attempt, and by the endpoint store to mint secrets.

* ``webhook-id`` is stable across retries of one delivery (the job id, or the payload's
  delivery id), so receivers can deduplicate: delivery is at-least-once.
* ``webhook-timestamp`` is fresh per attempt (integer seconds since the epoch); receivers
  refuse stale ones, so a retry an hour later must carry a new one.
* ``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the
  secret's decoded bytes (the secret is ``whsec_<base64>``). During a rotation overlap the
  delivery is signed with every active secret, space-separated, newest first, so receivers
  holding either secret verify it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 bytes of randomness
SIGNATURE_VERSION = "v1"

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class InvalidSecret(ValueError):
    """A signing secret that is not ``whsec_`` followed by base64 of 24 to 64 bytes."""


def generate_secret() -> str:
    """A new random signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret. Raises ``InvalidSecret`` (never echoing it)."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a signing secret must start with 'whsec_'")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("a signing secret must be 'whsec_' followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("a signing secret must decode to 24 to 64 bytes")
    return key


def timestamp_of(at: datetime) -> int:
    """The ``webhook-timestamp`` value for ``at``: whole seconds since the epoch."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return int(at.timestamp())


def sign_one(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    if not secrets_:
        raise InvalidSecret("at least one signing secret is needed")
    return " ".join(sign_one(s, msg_id, timestamp, body) for s in secrets_)


def signed_headers(
    secrets_: Sequence[str], msg_id: str, at: datetime, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt sent at ``at``."""
    timestamp = timestamp_of(at)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature_header(secrets_, msg_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """True when one of the ``v1`` signatures in ``headers`` was made with ``secret``.

    A convenience for Python receivers and tests; it does not check the timestamp's age
    (receivers should, as the reference libraries do).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get(HEADER_ID, "")
    raw_timestamp = lowered.get(HEADER_TIMESTAMP, "")
    if not msg_id or not raw_timestamp.isdigit():
        return False
    expected = sign_one(secret, msg_id, int(raw_timestamp), body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in lowered.get(HEADER_SIGNATURE, "").split()
    )
