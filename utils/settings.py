"""Salesforce credentials from the environment / ``.env``: which auth flow is configured, secrets kept secret.

Exactly one flow is chosen, in this order (the first whose variables are all present wins):

=====================  ==========================================================================
flow                   variables
=====================  ==========================================================================
access_token           SF_INSTANCE_URL, SF_ACCESS_TOKEN
jwt                    SF_CONSUMER_KEY, SF_USERNAME, SF_PRIVATE_KEY_FILE   (SF_DOMAIN optional)
client_credentials     SF_CONSUMER_KEY, SF_CONSUMER_SECRET, SF_DOMAIN      (a My Domain name; or SF_LOGIN_URL)
password               SF_USERNAME, SF_PASSWORD   (SF_TOKEN security token, SF_DOMAIN optional)
=====================  ==========================================================================

Optional everywhere: SF_LOGIN_URL (full https URL of the login host; overrides SF_DOMAIN), SF_CA_BUNDLE (a CA
certificate to trust), SF_API_VERSION (default 59.0), SF_TIMEOUT_SECONDS (HTTP timeout, default 120).
No SF_* credential variable at all means: use the embedded emulator.

A worker machine has no ``.env``: there the same variables come from a Prefect ``Secret`` block whose value is
a JSON object of them (``{"SF_USERNAME": "...", "SF_PASSWORD": "..."}``), named by the flows'
``credentials_block`` parameter. A block replaces every credential variable of the environment and ``.env``
(none of them can mix into it); other settings the block leaves out still come from there.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, SecretStr

from utils.errors import ConfigError

AuthFlow = Literal["access_token", "jwt", "client_credentials", "password"]

CREDENTIAL_VARS = (
    "SF_INSTANCE_URL", "SF_ACCESS_TOKEN", "SF_USERNAME", "SF_PASSWORD", "SF_TOKEN",
    "SF_CONSUMER_KEY", "SF_CONSUMER_SECRET", "SF_PRIVATE_KEY_FILE",
)
_FLOW_VARS: dict[AuthFlow, tuple[str, ...]] = {
    "access_token": ("SF_INSTANCE_URL", "SF_ACCESS_TOKEN"),
    "jwt": ("SF_CONSUMER_KEY", "SF_USERNAME", "SF_PRIVATE_KEY_FILE"),
    "client_credentials": ("SF_CONSUMER_KEY", "SF_CONSUMER_SECRET", "SF_DOMAIN"),
    "password": ("SF_USERNAME", "SF_PASSWORD"),
}
# what a credentials block may hold: one flow's variables and the settings that go with the org
BLOCK_VARS = (*CREDENTIAL_VARS, "SF_DOMAIN", "SF_LOGIN_URL", "SF_CA_BUNDLE", "SF_API_VERSION", "SF_TIMEOUT_SECONDS")
# SF_LOGIN_URL names the login host outright, so it stands in for SF_DOMAIN wherever a flow needs a domain
# (Credentials.login_base_url is where it overrides the domain)
_SATISFIED_BY: dict[str, tuple[str, ...]] = {"SF_DOMAIN": ("SF_DOMAIN", "SF_LOGIN_URL")}


_GENERIC_LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")  # no My Domain


class Credentials(BaseModel):
    """Connection settings for one org. Secrets are SecretStr: their repr is '**********'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow: AuthFlow
    instance_url: str | None = None
    access_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    private_key_file: Path | None = None
    domain: str = "login"
    login_url: str | None = None
    ca_bundle: Path | None = None
    api_version: str = "59.0"
    timeout_seconds: float = 120.0

    @property
    def login_base_url(self) -> str:
        """``https://login.salesforce.com``, ``https://test.salesforce.com``, a My Domain, or SF_LOGIN_URL."""
        if self.login_url:
            return self.login_url.rstrip("/")
        return f"https://{self.domain}.salesforce.com"

    @property
    def can_renew_session(self) -> bool:
        """A pasted access token cannot be renewed; every login flow can."""
        return self.flow != "access_token"


def _dotenv_file(path: str) -> tuple[tuple[str, str], ...]:
    """The file's variables, parsed again only when the file changes (paths and settings ask often)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return ()
    return _parse_dotenv(path, stamp)


@functools.lru_cache(maxsize=8)
def _parse_dotenv(path: str, stamp: int) -> tuple[tuple[str, str], ...]:  # noqa: ARG001 - stamp keys the cache
    return tuple((k, v) for k, v in dotenv_values(path).items() if v is not None)


def read_environment(env_file: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The process environment over the ``.env`` file (the environment wins); empty values are dropped.

    The file is ``$SF_ENV_FILE`` when set (empty: no file), else ``.env`` in the working directory.
    """
    if env_file is None:
        env_file = os.environ.get("SF_ENV_FILE", ".env")
    merged: dict[str, str] = dict(_dotenv_file(str(env_file))) if env_file else {}
    merged.update(os.environ)
    return {k: v.strip() for k, v in merged.items() if k.startswith("SF_") and v and v.strip()}


def setting(name: str, default: str | None = None) -> str | None:
    """One SF_ setting: the environment first, then the ``.env`` file (so .env works for every SF_ variable).

    Read on each call and never copied into ``os.environ``: settings cannot leak from one run into another.
    """
    return read_environment().get(name, default)


def env_number(name: str, default: float, *, positive: bool = False, non_negative: bool = False) -> float:
    """A numeric SF_ setting (``default`` when unset); see ``parse_number`` for what is refused."""
    return parse_number(name, setting(name), default, positive=positive, non_negative=non_negative)


def parse_number(name: str, raw: str | None, default: float, *, positive: bool = False,
                 non_negative: bool = False) -> float:
    """The number in setting ``name``; nan/inf, and a value below the bound asked for, are ConfigErrors naming it.

    ``float()`` accepts 'nan' and 'inf', and a limit compared with either is silently never (or always) reached.
    """
    text = (raw or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as err:
        msg = f"{name} must be a number, got {text!r}; fix it in .env or the environment"
        raise ConfigError(msg) from err
    problem = ("a finite number" if not math.isfinite(value) else "a positive number" if positive and value <= 0
               else "zero or a positive number" if non_negative and value < 0 else "")
    if problem:
        msg = f"{name} must be {problem}, got {text!r}; fix it in .env or the environment"
        raise ConfigError(msg)
    return value


def _is_set(name: str, env: Mapping[str, str]) -> bool:
    return any(n in env for n in _SATISFIED_BY.get(name, (name,)))


def _describe_missing(name: str) -> str:
    """``SF_DOMAIN (or SF_LOGIN_URL)``: the variable, and what else would do."""
    others = [n for n in _SATISFIED_BY.get(name, ()) if n != name]
    return f"{name} (or {' or '.join(others)})" if others else name


def _choose_flow(env: Mapping[str, str]) -> AuthFlow:
    for flow, names in _FLOW_VARS.items():
        if all(_is_set(n, env) for n in names):
            return flow
    present = [n for n in CREDENTIAL_VARS if n in env]
    best, missing = min(
        ((flow, [_describe_missing(n) for n in names if not _is_set(n, env)]) for flow, names in _FLOW_VARS.items()),
        key=lambda item: (len(item[1]), list(_FLOW_VARS).index(item[0])),
    )
    msg = (
        f"incomplete Salesforce credentials: found {', '.join(present)} but {', '.join(missing)} "
        f"is missing for the '{best}' flow; set it in .env (see .env.example), or remove every SF_ credential "
        "variable to use the built-in emulator"
    )
    raise ConfigError(msg)


def read_credentials_block(name: str) -> dict[str, str]:
    """The SF_ variables in the Prefect ``Secret`` block ``name`` (its value: a JSON object of them).

    No error says anything of the value: a JSON error's text quotes it, hence ``from None`` (its ``doc`` holds it).
    """
    from prefect.blocks.system import Secret  # imported here: reading .env must not need Prefect

    from utils.prefect_sync import blocking

    try:
        text = blocking(Secret.load(name)).get()
    except ValueError:  # Prefect's "Unable to find block document named ..."
        msg = (f"no Prefect Secret block named {name!r}: create it on the server the flows report to "
               "(README, Credentials on workers) or pass another credentials_block")
        raise ConfigError(msg) from None
    how = f"the Secret block {name!r} must hold a JSON object of SF_ variables (README, Credentials on workers)"
    try:
        values = json.loads(text)
    except ValueError:
        raise ConfigError(how) from None
    if not isinstance(values, dict):
        raise ConfigError(how)
    unknown = sorted(str(k) for k in values if k not in BLOCK_VARS)
    if unknown:
        msg = f"{how}; it has {', '.join(unknown)}, not one of {', '.join(BLOCK_VARS)}"
        raise ConfigError(msg)
    return {k: str(v).strip() for k, v in values.items() if v is not None and str(v).strip()}


def credential_settings(block: str | None = None) -> dict[str, str]:
    """The SF_ settings a run connects with: the environment over ``.env``, or with ``block`` that block over the
    non-credential settings of both (a block stands alone: an exported SF_PASSWORD cannot mix into it)."""
    env = read_environment()
    if not block:
        return env
    values = read_credentials_block(block)
    if not any(n in values for n in CREDENTIAL_VARS):
        msg = f"the Secret block {block!r} holds none of {', '.join(CREDENTIAL_VARS)}: no Salesforce credentials"
        raise ConfigError(msg)
    return {**{k: v for k, v in env.items() if k not in CREDENTIAL_VARS}, **values}


def load_credentials(env: Mapping[str, str] | None = None, *, block: str | None = None) -> Credentials | None:
    """Credentials for the configured flow, or None when no credential variable is set (emulator mode).

    ``env`` given: those variables alone; else ``credential_settings(block)``.
    """
    env = credential_settings(block) if env is None else {k: v for k, v in env.items() if v}
    if not any(n in env for n in CREDENTIAL_VARS):
        return None
    flow = _choose_flow(env)
    key_file = env.get("SF_PRIVATE_KEY_FILE")
    if flow == "jwt" and key_file and not Path(key_file).is_file():
        msg = f"SF_PRIVATE_KEY_FILE points at {key_file}, which does not exist; fix the path in .env"
        raise ConfigError(msg)
    ca = env.get("SF_CA_BUNDLE")
    if ca and not Path(ca).is_file():
        msg = f"SF_CA_BUNDLE points at {ca}, which does not exist; fix the path in .env or remove it"
        raise ConfigError(msg)
    credentials = Credentials(
        flow=flow,
        instance_url=env.get("SF_INSTANCE_URL"),
        access_token=env.get("SF_ACCESS_TOKEN"),
        username=env.get("SF_USERNAME"),
        password=env.get("SF_PASSWORD"),
        security_token=env.get("SF_TOKEN"),
        consumer_key=env.get("SF_CONSUMER_KEY"),
        consumer_secret=env.get("SF_CONSUMER_SECRET"),
        private_key_file=Path(key_file) if key_file else None,
        domain=env.get("SF_DOMAIN", "login"),
        login_url=env.get("SF_LOGIN_URL"),
        ca_bundle=Path(ca) if ca else None,
        api_version=env.get("SF_API_VERSION", "59.0"),
        timeout_seconds=parse_number("SF_TIMEOUT_SECONDS", env.get("SF_TIMEOUT_SECONDS"), 120.0, positive=True),
    )
    if flow == "client_credentials" and credentials.login_base_url in _GENERIC_LOGIN_HOSTS:
        msg = ("the client-credentials flow needs your My Domain in SF_DOMAIN (e.g. 'mycompany.my') or "
               "SF_LOGIN_URL, not login/test")
        raise ConfigError(msg)
    return credentials
