"""Signing: our Standard Webhooks headers verify with the reference libraries
(``standardwebhooks`` and ``svix``), during rotation too; secrets are validated."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import svix.webhooks

from conveyor.handlers.webhook.signing import (
    InvalidSecret,
    decode_secret,
    generate_secret,
    signed_headers,
    verify,
)

BODY = b'{"event":"invoice.paid","amount":42}'


def test_generated_secret_shape() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert generate_secret() != secret


@pytest.mark.parametrize("library", ["standardwebhooks", "svix"])
def test_reference_libraries_verify(library: str) -> None:
    secret = generate_secret()
    headers = signed_headers([secret], "msg_2a8f", datetime.now(UTC), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    if library == "standardwebhooks":
        assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
            "event": "invoice.paid",
            "amount": 42,
        }
    else:
        svix.webhooks.Webhook(secret).verify(BODY, headers)


def test_reference_library_rejects_tampering_and_wrong_secret() -> None:
    secret = generate_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_stale_timestamp_is_refused_by_receivers() -> None:
    secret = generate_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC) - timedelta(hours=1), BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        standardwebhooks.Webhook(secret).verify(BODY, headers)


def test_rotation_signs_with_both_and_either_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed_headers([new, old], "msg_1", datetime.now(UTC), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        svix.webhooks.Webhook(secret).verify(BODY, headers)
        assert verify(secret, headers, BODY)
    assert not verify(generate_secret(), headers, BODY)


def test_known_vector() -> None:
    # The example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signed_headers(
        [secret],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.fromtimestamp(1614265330, UTC),
        b'{"test": 2432232314}',
    )
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "bad",
    [
        "no_prefix",
        "whsec_!!!not-base64!!!",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_",
    ],
)
def test_invalid_secrets(bad: str) -> None:
    with pytest.raises(InvalidSecret) as info:
        decode_secret(bad)
    assert bad[6:] not in str(info.value) or not bad[6:]
