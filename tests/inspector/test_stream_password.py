"""A stream camera's password from an environment variable, as the broker's is (never in the station file)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inspector.config import StreamSource
from inspector.sources import open_source
from model.errors import InspectorError


def stream(url: str, env: str | None = "CAM_PW") -> StreamSource:
    return StreamSource(type="stream", url=url, password_env=env)


def test_the_password_is_added_to_the_url_opened_and_nowhere_else(monkeypatch):
    monkeypatch.setenv("CAM_PW", "p/ss?w#rd@1")
    cfg = stream("rtsp://admin@cam.local:554/live?channel=1")
    assert cfg.open_url() == "rtsp://admin:p%2Fss%3Fw%23rd%401@cam.local:554/live?channel=1"  # / ? # @ %-encoded
    source = open_source(cfg)
    assert source._url == cfg.open_url() and "ss" not in source.name and source.name == "stream:rtsp://cam.local:554/live?…"
    assert "p/ss" not in cfg.model_dump_json()  # the record of the config holds the variable's name only
    assert stream("rtsp://admin:inline@cam/live", env=None).open_url() == "rtsp://admin:inline@cam/live"


@pytest.mark.parametrize(("url", "env", "said"), [
    ("rtsp://cam/live", "CAM_PW", "give the user name in source.url"),
    ("rtsp://admin:secret@cam/live", "CAM_PW", "holds a password too"),
    ("rtsp://admin@cam/live", "hunter2!", "give the NAME of an environment variable"),
])
def test_a_password_variable_the_url_cannot_take_is_refused(url, env, said):
    with pytest.raises(ValidationError, match=said):
        stream(url, env)


def test_an_unset_variable_is_one_line_naming_it(monkeypatch):
    monkeypatch.delenv("CAM_PW", raising=False)
    with pytest.raises(InspectorError, match=r"^source.password_env: environment variable CAM_PW is not set; export it"):
        open_source(stream("rtsp://admin@cam/live"))


def test_a_user_name_holding_an_at_sign_keeps_its_host(monkeypatch):
    """The check took the user info to the authority's last @, the URL opened cut it at the first: a user
    `line3@plant` made the password go between `line3` and `plant`, and the camera's host `plant@cam`."""
    monkeypatch.setenv("CAM_PW", "pw")
    assert stream("rtsp://line3@plant@cam.local/live?x=1").open_url() == "rtsp://line3@plant:pw@cam.local/live?x=1"
