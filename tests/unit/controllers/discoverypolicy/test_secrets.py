"""Secret -> Credentials: supported keys, half pairs and missing keys named, values never shown."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from drop_operator.controllers.discoverypolicy.secrets import (
    SECRET_KEY_MISSING,
    SecretError,
    credentials_from_secret,
    secret_data,
)


def secret(**data: str) -> dict[str, Any]:
    encoded = {k.replace("__", "."): base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": "creds", "namespace": "drop-system"}, "data": encoded}


def test_basic_auth_keys() -> None:
    creds = credentials_from_secret(secret(username="admin", password="s3cret"))
    assert creds.username == "admin"
    assert creds.password == "s3cret"
    assert "s3cret" not in repr(creds)


def test_token_ca_client_cert_and_headers() -> None:
    obj = secret(token=" abc \n", ca__crt="CA", tls__crt="CERT", tls__key="KEY")
    obj["data"]["headers.X-Scope-OrgID"] = base64.b64encode(b"tenant-1").decode()
    creds = credentials_from_secret(obj)
    assert creds.token == "abc"
    assert (creds.ca_pem, creds.cert_pem, creds.key_pem) == ("CA", "CERT", "KEY")
    assert dict(creds.headers) == {"X-Scope-OrgID": "tenant-1"}


def test_string_data_as_written_in_a_file_is_read_and_wins_over_data() -> None:
    obj = secret(username="old")
    obj["stringData"] = {"username": "admin", "password": "pw"}
    assert secret_data(obj) == {"username": b"admin", "password": b"pw"}
    assert credentials_from_secret(obj).username == "admin"


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"password": "pw"}, "has password but no username"),
        ({"tls__crt": "C"}, "has tls.crt but no tls.key"),
        ({"tls__key": "K"}, "has tls.key but no tls.crt"),
        ({"user": "admin", "pass": "pw"}, "has none of the keys"),
        ({}, "has none of the keys"),
    ],
)
def test_missing_keys_are_secret_key_missing_and_name_keys_not_values(
    data: dict[str, str], missing: str
) -> None:
    with pytest.raises(SecretError) as info:
        credentials_from_secret(secret(**data))
    assert info.value.reason == SECRET_KEY_MISSING
    assert missing in info.value.message
    assert "drop-system/creds" in info.value.message
    assert "pw" not in info.value.message.replace("pass", "")


def test_username_alone_is_basic_auth_with_empty_password() -> None:
    creds = credentials_from_secret(secret(username="reader"))
    assert creds.username == "reader"
    assert creds.basic_auth() is not None


def test_invalid_base64_is_reported_without_the_value() -> None:
    obj = {"metadata": {"name": "x"}, "data": {"token": "%%%not-base64%%%"}}
    with pytest.raises(SecretError) as info:
        credentials_from_secret(obj)
    assert "token" in info.value.message
    assert "%%%" not in info.value.message


def test_invalid_header_is_reported_with_the_secret_name() -> None:
    obj = secret()
    obj["data"]["headers.Bad Name"] = base64.b64encode(b"v").decode()
    with pytest.raises(SecretError) as info:
        credentials_from_secret(obj)
    assert info.value.reason == "InvalidCredentials"
