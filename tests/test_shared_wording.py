"""Folded duplicates: one URL scrubber (config.safe_url) for config errors, sources' names and the intake's URL errors;
TLS files said in model.errors' words; model.quality's warning texts the one copy reports translate."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from inspector.config import Tls, config_errors, safe_url
from model.errors import InspectorError
from tests.inspector.test_config import BASE
from tests.inspector.test_security import _intake

# url, as logs, records and source names show it, as a config error echoes it (marking what was cut)
URLS = [
    # sources.safe_url's cases
    ("rtsp://admin:p@ss@cam1/stream", "rtsp://cam1/stream", "rtsp://…@cam1/stream"),  # FFmpeg takes the last @
    ("http://u:pw@10.0.0.5:8080/v.mjpg?token=SECRET42", "http://10.0.0.5:8080/v.mjpg?…", "http://…@10.0.0.5:8080/v.mjpg?…"),
    ("rtsp://cam1:554/h264", "rtsp://cam1:554/h264", "rtsp://cam1:554/h264"),
    ("rtsp://admin:Pa/ss9@cam4/stream1", "rtsp://…", "rtsp://…"),  # a password holding / ? or #: no telling it from a host
    ("rtsp://admin:Pa?ss9@cam4/stream1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa#ss9@cam4/stream1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:P@ss#9@cam4/stream1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:1234?ss9@cam4/stream1", "rtsp://…", "rtsp://…"),
    ("http://cam4/v.mjpg?user=me@x.com&pw=Pa.ss9", "http://cam4/v.mjpg?…", "http://cam4/v.mjpg?…"),  # config showed "pw=Pa.ss9"
    ("rtsp://admin:P@ss9@[fe80::1]:554/s", "rtsp://[fe80::1]:554/s", "rtsp://…@[fe80::1]:554/s"),
    ("rtsp://admin:Pa%2Fss9@cam4:554/stream1", "rtsp://cam4:554/stream1", "rtsp://…@cam4:554/stream1"),
    # config._unsecret's cases
    ("rtsp:/admin:S3cret@cam4:554/s1", "rtsp:/cam4:554/s1", "rtsp:/…@cam4:554/s1"),  # a slash short (safe_url showed "…")
    ("rtsp://admin:S3cret PW@cam4/s1?token=S3cret", "rtsp://cam4/s1?…", "rtsp://…@cam4/s1?…"),
    ("rtsp//cam4/s1?S3cret", "rtsp//cam4/s1?…", "rtsp//cam4/s1?…"),
    ("admin:S3cret@cam4/s1", "cam4/s1", "…@cam4/s1"),  # no scheme: config showed "admin:" as one
    # a fragment (an OAuth-style #access_token): config showed it
    ("https://cam4/v.mjpg#access_token=S3cret", "https://cam4/v.mjpg", "https://cam4/v.mjpg#…"),
    ("https://cam4/v.mjpg?a=1#S3cret", "https://cam4/v.mjpg?…", "https://cam4/v.mjpg?…#…"),
    # a GStreamer pipeline as a camera device: the URL inside it
    ("rtspsrc location=rtsp://op:S3cret@cam4/s1 ! decodebin", "rtspsrc location=rtsp://cam4/s1 ! decodebin",
     "rtspsrc location=rtsp://…@cam4/s1 ! decodebin"),
    ("/dev/video0", "/dev/video0", "/dev/video0"),
]


@pytest.mark.parametrize(("url", "shown", "marked"), URLS)
def test_one_scrubber_shows_a_url_without_its_user_info_query_or_fragment(url, shown, marked):
    assert safe_url(url) == shown
    assert safe_url(url, mark=True) == marked
    for secret in ("S3cret", "Pa", "ss9", "1234", "admin", "SECRET42", "pw"):
        assert secret not in shown.replace("/dev/video0", "") and secret not in marked, (url, secret)


# url, an error about it (as urllib or http.client word one), the error shown (intake._scrub's cases and more)
TEXTS = [
    ("http://op:Pa55word@127.0.0.1:9/p.png", "cannot connect to op:Pa55word@127.0.0.1:9", "cannot connect to …@127.0.0.1:9"),
    ("http://127.0.0.1:9/p.png?access_token=T0KEN-42", "URL can't contain control characters. '/p.png?access_token=T0KEN-42'",
     "URL can't contain control characters. '/p.png?…'"),
    ("http://127.0.0.1:9/p.png#T0KEN-42", "bad request '/p.png#T0KEN-42'", "bad request '/p.png#…'"),  # _scrub kept the fragment
    # urlsplit ended the user info at the /, and urllib read the password's start as the port: _scrub said "'Pa55'"
    ("http://op:Pa55/word@127.0.0.1:9/p.png", "nonnumeric port: 'Pa55'", "nonnumeric port: '…'"),
    ("http://127.0.0.1:9/p.png", "HTTP Error 404: Not Found", "HTTP Error 404: Not Found"),
    ("http://img.local/part@2x.png", "HTTP Error 404: Not Found", "HTTP Error 404: Not Found"),  # an @ in the path alone
    ("http://[::1/p.png?t=T0KEN", "Invalid IPv6 URL t=T0KEN", "Invalid IPv6 URL …"),  # _scrub: "the URL is malformed"
]


@pytest.mark.parametrize(("url", "text", "said"), TEXTS)
def test_one_scrubber_cuts_a_urls_secrets_from_an_error_about_it(url, text, said):
    assert safe_url(url, text) == said


def test_a_config_error_echoes_no_secret_after_an_at_in_the_query_nor_in_a_fragment(tmp_path):
    """config._unsecret cut a URL at its last @ wherever it was: `?user=me@x.com&pw=Pa.ss9` was echoed as `…@x.com&pw=Pa.ss9`;
    a fragment was echoed whole, and a URL without its scheme showed its user name as one."""
    for url, shown in (("ftp://cam4/v.mjpg?user=me@x.com&pw=Pa.ss9", "'ftp://cam4/v.mjpg?…'"),
                       ("ftp://cam4/v.mjpg#access_token=Pa.ss9", "'ftp://cam4/v.mjpg#…'"),
                       ("admin:Pa.ss9@cam4/s1", "'…@cam4/s1'")):
        f = tmp_path / "s.yaml"
        f.write_text(BASE.replace("type: camera\n  device: 0", f"type: stream\n  url: {url}"))
        said = "\n".join(config_errors(f)[1])
        assert f"source.url: give an rtsp://, rtsps://, http:// or https:// URL (got {shown})" in said, said
        assert "Pa.ss9" not in said and "admin" not in said, said


@pytest.mark.parametrize("url", ["http://op:Pa55/word@127.0.0.1:9/p.png", "http://[::1/p.png", "http://127.0.0.1:99999/p.png"])
def test_a_trigger_url_whose_host_or_port_cannot_be_read_is_refused_in_one_line(tmp_path, url):
    """`op:Pa55/word@host` was fetched from host `op`, and the error said "nonnumeric port: 'Pa55'" (the password's start)
    on the error topic; `http://[::1/...` raised ValueError out of the intake ("could not be handled", a traceback in the log)."""
    intake = _intake(tmp_path, allow_urls=True, url_timeout_s=1.0)
    with pytest.raises(InspectorError) as caught:
        intake._fetch(url)
    said = str(caught.value)
    assert "its host or port cannot be read; send an http(s) URL like" in said and "Pa55" not in said, said


# -- safe_url: URL forms that leaked through it ------------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.

# url, as logs and source names show it, as a config error echoes it
LEAKED = [
    # a password holding / or ? before a host that is no host (a typo: the very URL a config error echoes) was shown whole
    ("rtsp://admin:Pa/ss9@cam 4/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@cam4:55a/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@cam4:/s1", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa/ss9@", "rtsp://…", "rtsp://…"),
    ("rtsp://admin:Pa?ss9@cam 4/s1", "rtsp://…", "rtsp://…"),  # showed "rtsp://admin:Pa?…"
    ("rtsp://admin:Pa/ss9@cam4&x=1/s1", "rtsp://…", "rtsp://…"),  # an @ in the path: whatever follows it
    # path parameters: a session token, a camera taking its password in the path (XMEye's /user=..._password=...)
    ("rtsp://cam4/s1;jsessionid=ss9", "rtsp://cam4/s1;…", "rtsp://cam4/s1;…"),
    ("rtsp://admin:Pa@cam4/s1;password=ss9", "rtsp://cam4/s1;…", "rtsp://…@cam4/s1;…"),
    ("rtsp://cam4:554/user=admin_password=ss9_channel=1_stream=0.sdp", "rtsp://cam4:554/user=…", "rtsp://cam4:554/user=…"),
    # a GStreamer pipeline: a property after its URL or before it
    ("rtspsrc location=rtsp://cam4/s1 user-id=admin user-pw=ss9 ! decodebin", "rtspsrc location=rtsp://cam4/s1 user-id=…",
     "rtspsrc location=rtsp://cam4/s1 user-id=…"),
    ('rtspsrc user-id=admin user-pw="Pa ss9" location=rtsp://cam4/s1 ! decodebin',
     "rtspsrc user-id=… user-pw=… location=rtsp://cam4/s1 ! decodebin", "rtspsrc user-id=… user-pw=… location=rtsp://cam4/s1 ! decodebin"),
]


@pytest.mark.parametrize(("url", "shown", "marked"), LEAKED)
def test_no_url_form_shows_its_password_or_token(url, shown, marked):
    assert safe_url(url) == shown
    assert safe_url(url, mark=True) == marked
    for secret in ("Pa", "ss9", "admin"):
        assert secret not in shown and secret not in marked, (url, secret)


def test_a_config_error_does_not_echo_the_password_of_a_url_with_a_typo_in_its_host(tmp_path):
    """`url: rtsp://admin:Pa/ss9@cam 4/s1` (a space, so refused) was echoed whole: a password on the terminal and, from
    serve, in the journal."""
    f = tmp_path / "s.yaml"
    f.write_text(BASE.replace("type: camera\n  device: 0", "type: stream\n  url: rtsp://admin:Pa/ss9@cam 4/s1"))
    said = "\n".join(config_errors(f)[1])
    assert "source.url: give an rtsp://, rtsps://, http:// or https:// URL (got 'rtsp://…')" in said, said
    assert "ss9" not in said and "admin" not in said, said


def test_an_at_in_a_fragment_followed_by_a_parameter_is_no_user_info():
    """As `?user=me@x.com&pw=...`: what follows the `#` is the fragment's, not a host a password ran on to."""
    assert safe_url("https://cam4/v.mjpg#a=me@x.com&b=1") == "https://cam4/v.mjpg"
    assert safe_url("https://cam4/v.mjpg#a=me@x.com&b=1", mark=True) == "https://cam4/v.mjpg#…"
    assert safe_url("https://cam4/v.mjpg?a=me@x.com&b=1", mark=True) == "https://cam4/v.mjpg?…"


# url, an error about it, the error shown
CUT_TEXTS = [
    # no user info: nothing of the error is cut (all but the URL's last character was taken as user info)
    ("http://cam4:8080/p.png", "cannot connect to cam4:8080/p.png", "cannot connect to cam4:8080/p.png"),
    ("http://cam4/p;sid=T0KEN/x.png", "bad request '/p;sid=T0KEN/x.png'", "bad request '/p;…'"),
    ("http://cam4/p.png#a=1&t=T0KEN", "bad request '/p.png#a=1&t=T0KEN'", "bad request '/p.png#…'"),
    # a password holding / and @: each piece cut, up to the last @ before a host
    ("http://op:P@ss/w0rd@cam4/p.png", "no host 'P' nor 'w0rd' nor 'ss'", "no host '…' nor '…' nor '…'"),
    ("http://op:P/w0rd@x@cam4/p.png", "no host 'x'", "no host '…'"),
]


@pytest.mark.parametrize(("url", "text", "said"), CUT_TEXTS)
def test_an_error_about_a_url_is_cut_of_its_secrets_and_nothing_else(url, text, said):
    assert safe_url(url, text) == said


def test_an_at_with_no_user_before_it_and_a_bare_fragment_are_marked_where_they_were():
    assert safe_url("rtsp://@cam4/s1", mark=True) == "rtsp://…@cam4/s1"
    assert safe_url("rtsp://@cam4/s1") == "rtsp://cam4/s1"
    assert safe_url("https://cam4/v.mjpg#", mark=True) == "https://cam4/v.mjpg#…"


def test_a_secret_within_another_does_not_leave_the_longer_ones_rest():
    """Cut shorter first, `T0` of `#T0` left `t=…KEN` of the query in the error."""
    assert safe_url("http://cam4/p.png?t=T0KEN#T0", "bad request '/p.png?t=T0KEN#T0'") == "bad request '/p.png?…#…'"


def test_a_tls_file_is_said_in_model_errors_words(tmp_path):
    """A path through a file read "cannot be read (Not a directory); let this user read it", and a name too long likewise:
    no permission would help; a link to nothing read "no such file" (the link is there)."""
    (tmp_path / "f").write_text("")
    os.symlink(tmp_path / "gone.pem", tmp_path / "link.pem")
    os.mkfifo(tmp_path / "fifo.pem")
    for path, said in ((tmp_path / "gone.pem", "no such file; fix the path"),
                       (tmp_path / "f" / "ca.pem", "no such file; fix the path"),
                       (tmp_path / "link.pem", f"a link to {tmp_path / 'gone.pem'}, which leads nowhere; fix the path"),
                       (tmp_path, "a folder, not a PEM file; give a PEM file"),
                       (tmp_path / "fifo.pem", "not a regular file (a device, FIFO or socket); give a PEM file"),
                       (tmp_path / ("x" * 300), "cannot be read (File name too long); fix the path")):
        with pytest.raises(InspectorError) as caught:
            Tls(cert_file=str(path)).check_files()
        assert str(caught.value) == f"mqtt.tls.cert_file {path}: {said}"
    (tmp_path / "ca.pem").write_text("")
    Tls(ca_file=str(tmp_path / "ca.pem")).check_files()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_tls_file_this_user_cannot_read_says_to_let_it(tmp_path):
    (tmp_path / "ca.pem").write_text("")
    (tmp_path / "ca.pem").chmod(0)
    with pytest.raises(InspectorError, match=r"ca.pem: cannot be read \(Permission denied\); let this user \(.+\) read it"):
        Tls(ca_file=str(tmp_path / "ca.pem")).check_files()


def test_reports_read_the_quality_warnings_from_model_quality():
    """reports.warnings kept its own copy of model.quality.WARNINGS: a text changed or added in one was no longer known
    (or translated) by the other."""
    import model.quality
    import reports.warnings

    text = "image is fogged: wipe the lens"
    model.quality.WARNINGS["fogged"] = text
    try:
        importlib.reload(reports.warnings)
        assert reports.warnings.warning_kind(text) == "fogged"
        assert reports.warnings.translate_warning(lambda m: m, text) == "Image is fogged: wipe the lens"  # the catalog's msgid
    finally:
        del model.quality.WARNINGS["fogged"]
        importlib.reload(reports.warnings)
    for kind, text in model.quality.WARNINGS.items():
        assert reports.warnings.warning_kind(text) == kind


def test_reading_the_warnings_imports_no_opencv():
    """reports.warnings reads model.quality's texts; a report has no other use for OpenCV (about 0.2 s to import)."""
    code = "import sys, reports.warnings; assert 'cv2' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
