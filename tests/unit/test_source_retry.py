"""Pure pieces behind the source's reliability: login-failure classification and messages, the shared backoff
policy (jittered) and retry loop, and the describe-time metric/type check."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceMalformedRequest

from configs.salesforce_objects import ObjectSpec
from tasks.extract_schema import check_metric_types
from utils.connection import LoginAnswer, login_outage_message, login_rate_limited_message, login_rejected_message
from utils.errors import ConfigError, RetriableSourceError
from utils.raw_schema import RawColumn
from utils.settings import Credentials
from utils.sf_errors import Action, RetryPolicy, classify_login, retry_transient

INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


@pytest.mark.parametrize(("code", "status", "action"), [
    ("INVALID_LOGIN", 500, Action.FATAL),           # SOAP rejects a login with HTTP 500
    ("SERVER_UNAVAILABLE", 500, Action.RETRY),      # ... and says so when it is down
    ("SERVER_UNAVAILABLE", 503, Action.RETRY),
    ("UNKNOWN_EXCEPTION", 500, Action.RETRY),
    ("server_unavailable", 503, Action.RETRY),      # OAuth error codes are lower case
    ("invalid_grant", 400, Action.FATAL),
    ("invalid_client", 401, Action.FATAL),
    (503, 503, Action.RETRY),                       # a load balancer's page: simple-salesforce puts the status there
    (500, 500, Action.RETRY),
    ("INVALID_LOGIN", 502, Action.RETRY),           # a gateway error is an outage whatever the body says
    (400, 400, Action.FATAL),
    ("UNKNOWN_ERROR", 500, Action.RETRY),           # Salesforce's "retry your request" for OAuth
    ("unknown_error", 400, Action.RETRY),
    (None, 500, Action.RETRY),                      # a JSON 5xx without an error field: simple-salesforce says None
    (None, 400, Action.FATAL),
    ("rate_limit_exceeded", 400, Action.QUOTA),     # logins are being limited: more attempts extend it
    ("LOGIN_RATE_EXCEEDED", 500, Action.QUOTA),
    (429, 429, Action.QUOTA),
])
def test_login_failures_are_outages_or_rejections(code, status, action):
    assert classify_login(SalesforceAuthenticationFailed(code, "x"), status) is action


@pytest.mark.parametrize("err", [requests.ConnectionError("refused"), requests.Timeout("slow"),
                                 requests.exceptions.ChunkedEncodingError("cut")])
def test_transport_errors_during_login_are_outages(err):
    assert classify_login(err, None) is Action.RETRY


def test_an_invalid_login_url_is_not_retried():
    assert classify_login(requests.exceptions.InvalidURL("bad"), None) is Action.FATAL


CREDS = Credentials(flow="password", username="u@example.com", password="Pw-SECRET-1", login_url="https://login.x")


def test_a_rejection_says_check_the_credentials_with_salesforces_own_words():
    message = login_rejected_message(CREDS, SalesforceAuthenticationFailed("INVALID_LOGIN", INVALID_LOGIN))
    assert message == (f"Salesforce rejected the 'password' login (INVALID_LOGIN: {INVALID_LOGIN}); "
                       "check the SF_ credentials in .env")


def test_an_outage_message_names_the_host_status_and_attempts_never_the_credentials():
    err = SalesforceAuthenticationFailed("SERVER_UNAVAILABLE", "Server temporarily unavailable; retry later.")
    message = login_outage_message(CREDS, err, LoginAnswer(503, "text/xml"), 6)
    assert message == ("Salesforce login host https://login.x unavailable (HTTP 503 SERVER_UNAVAILABLE: Server "
                       "temporarily unavailable; retry later.) after 6 attempts; the next run will try again")
    unreachable = login_outage_message(CREDS, requests.ConnectionError("refused"), LoginAnswer(), 6)
    assert "unavailable (ConnectionError) after 6 attempts" in unreachable
    assert "credentials" not in message + unreachable and "{content}" not in message + unreachable


def test_a_long_salesforce_message_is_cut_short():
    words = "Server temporarily unavailable " + "x" * 5000
    err = SalesforceAuthenticationFailed("SERVER_UNAVAILABLE", words)
    message = login_outage_message(CREDS, err, LoginAnswer(503, "text/xml"), 2)
    assert f"unavailable (HTTP 503 SERVER_UNAVAILABLE: {words[:200]}...) after 2 attempts" in message


# What a proxy or gateway might send back for a login: the request echoed, secrets included.
ECHO = ("<html><body>Bad gateway. Request was: <password>Pw-SECRET-1TOKEN</password> "
        "assertion=eyJhbGciOiJSUzI1NiJ9.SECRET-ASSERTION</body></html>")


@pytest.mark.parametrize("code", [502, None])  # SOAP: no exceptionCode -> the status; OAuth JSON without error
def test_a_page_that_is_no_login_fault_is_never_quoted(code):
    """Only Salesforce's words under a recognised fault code are quoted: any other page may echo the request."""
    err = SalesforceAuthenticationFailed(code, ECHO)
    answer = LoginAnswer(502, "text/html; charset=utf-8")
    outage = login_outage_message(CREDS, err, answer, 6)
    rejected = login_rejected_message(CREDS, SalesforceAuthenticationFailed(code, ECHO), LoginAnswer(400, "text/html"))
    for message in (outage, rejected):
        assert "SECRET" not in message and "<html>" not in message, message
    assert outage == ("Salesforce login host https://login.x unavailable (HTTP 502, text/html; charset=utf-8, not a "
                      "Salesforce login answer) after 6 attempts; the next run will try again")
    assert rejected == ("Salesforce rejected the 'password' login (HTTP 400, text/html, not a Salesforce login "
                        "answer); check the SF_ credentials in .env")


def test_a_login_rate_limit_says_so_and_never_blames_the_credentials():
    err = SalesforceAuthenticationFailed("rate_limit_exceeded", "too many login attempts")
    message = login_rate_limited_message(CREDS, err, LoginAnswer(429, "application/json"))
    assert message.startswith("Salesforce is limiting logins at https://login.x (HTTP 429 rate_limit_exceeded: "
                              "too many login attempts): this user or connected app logged in too often")
    assert "credentials" not in message and "wait before the next run" in message


def test_the_longest_wait_doubles_up_to_the_cap():
    policy = RetryPolicy(max_attempts=8, backoff_base_seconds=1.0, backoff_max_seconds=30.0)
    assert [policy.max_wait_seconds(a) for a in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_each_wait_is_jittered_between_zero_and_the_longest_wait():
    policy = RetryPolicy(max_attempts=8, backoff_base_seconds=1.0, backoff_max_seconds=30.0)
    wait = policy.wait()
    for attempt in range(1, 8):
        waits = [wait(SimpleNamespace(attempt_number=attempt)) for _ in range(200)]
        assert all(0 <= w <= policy.max_wait_seconds(attempt) for w in waits), attempt
        assert len(set(waits)) > 1, attempt  # jitter: threads that failed together do not retry together


NO_WAIT = RetryPolicy(max_attempts=4, backoff_base_seconds=0.0)


def _flaky(failures: list[BaseException]):
    calls = []

    def request() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"
    return request, calls


def test_transient_errors_are_retried_until_the_request_succeeds():
    request, calls = _flaky([requests.ConnectionError("reset"), requests.Timeout("slow")])
    assert retry_transient(request, NO_WAIT, what="the check") == "ok" and len(calls) == 3


def test_a_fatal_error_is_raised_unchanged_at_once():
    bad = SalesforceMalformedRequest("u", 400, "query", [{"errorCode": "MALFORMED_QUERY", "message": "no"}])
    request, calls = _flaky([bad])
    with pytest.raises(SalesforceMalformedRequest):
        retry_transient(request, NO_WAIT, what="the check")
    assert len(calls) == 1


def test_an_outage_outlasting_the_attempts_is_a_retriable_error_saying_so():
    request, calls = _flaky([requests.ConnectionError("reset")] * 10)
    with pytest.raises(RetriableSourceError, match=r"^the check still failing after 4 attempts \(ConnectionError\)"):
        retry_transient(request, NO_WAIT, what="the check")
    assert len(calls) == 4


def test_each_retry_is_logged_with_its_attempt_and_a_wait_within_the_bounds(caplog):
    policy = RetryPolicy(max_attempts=4, backoff_base_seconds=0.001)
    request, calls = _flaky([requests.ConnectionError("reset"), requests.Timeout("slow")])
    with caplog.at_level(logging.INFO, logger="sf_pipeline"):
        assert retry_transient(request, policy, what="the check", log_fields={"object": "Account"}) == "ok"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=retry ")]
    assert [line.split(" wait_seconds=")[0] for line in lines] == [
        'event=retry object=Account during="the check" error=ConnectionError attempt=1',
        'event=retry object=Account during="the check" error=Timeout attempt=2',
    ]
    waits = [float(line.split(" wait_seconds=")[1]) for line in lines]
    assert all(0 <= w <= policy.max_wait_seconds(n) + 0.0005 for n, w in enumerate(waits, 1)), waits  # 3 decimals


def test_an_error_that_is_already_ours_is_not_retried():
    request, calls = _flaky([RetriableSourceError("Account: still failing")])
    with pytest.raises(RetriableSourceError, match="^Account: still failing$"):
        retry_transient(request, NO_WAIT, what="the check")
    assert len(calls) == 1


def _columns(**types: str) -> tuple[RawColumn, ...]:
    return tuple(RawColumn(name, sf_type) for name, sf_type in types.items())


DESCRIBED = _columns(Id="id", Name="string", Amount="currency", IsWon="boolean", CloseDate="date",
                     CreatedDate="datetime", Geo="sometype")


def _spec(**metrics: tuple[str, ...]) -> ObjectSpec:
    return ObjectSpec(fields=tuple(c.name for c in DESCRIBED), metrics=metrics)


def test_metrics_that_fit_their_described_types_pass():
    spec = _spec(Id=("count",), Amount=("sum", "mean", "median", "std"), IsWon=("sum", "mean"),
                 CloseDate=("min", "max"), Name=("n_unique", "null_count"))
    check_metric_types("Opportunity", spec, DESCRIBED)


def test_a_metric_on_a_column_of_the_wrong_type_names_object_column_aggregation_type_and_fix():
    with pytest.raises(ConfigError) as err:
        check_metric_types("Opportunity", _spec(Name=("sum",), CreatedDate=("mean",), IsWon=("median",)), DESCRIBED)
    message = str(err.value)
    assert "Opportunity.metrics['Name']: 'sum' does not apply to a text column (string)" in message
    assert "Opportunity.metrics['CreatedDate']: 'mean' does not apply to a datetime column (datetime)" in message
    assert "Opportunity.metrics['IsWon']: 'median' does not apply to a boolean column (boolean)" in message
    assert "use count, n_unique, null_count, min or max" in message and "configs/salesforce_objects.py" in message


def test_columns_the_extract_lacks_or_of_unknown_type_are_left_to_processing():
    check_metric_types("Opportunity", _spec(Missing=("sum",), Geo=("sum",)), DESCRIBED)


def test_the_registry_spelling_is_matched_case_insensitively_like_describe():
    with pytest.raises(ConfigError, match=r"metrics\['name'\]: 'sum' does not apply to a text column"):
        check_metric_types("Opportunity", _spec(name=("sum",)), DESCRIBED)


def test_the_describe_time_check_does_not_load_processing():
    """The aggregation-vs-type rule lives in utils/aggregations, so extract needs neither Polars plans nor Prefect
    tasks from processing (one owner, no task module importing another for a rule)."""
    import subprocess
    import sys

    code = "import sys, tasks.extract_schema; print('tasks.process' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
