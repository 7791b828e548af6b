"""The Prefect database bootstrap stays out of the way when a Prefect server owns the database."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from utils.prefect_home import prepare_prefect_database, uses_ephemeral_api


def test_with_a_prefect_server_configured_nothing_is_created(tmp_path):
    home = tmp_path / "home"
    # nothing listens on port 9: any attempt to reach the "server" or to create a database would show
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_HOME: home}):
        assert not uses_ephemeral_api()
        prepare_prefect_database()
    assert sorted(home.iterdir()) == []  # Prefect's settings context creates the folder; nothing goes in it


def test_without_a_server_the_api_is_ephemeral(tmp_path):
    with temporary_settings(updates={PREFECT_HOME: tmp_path}, restore_defaults={PREFECT_API_URL}):
        assert uses_ephemeral_api()
