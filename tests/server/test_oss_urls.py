"""The origins a page connects to, for both upload paths, follow the same endpoint rules."""

from __future__ import annotations

import pytest

from server.bucket.urls import form_url, sdk_origin, upload_origins


@pytest.mark.parametrize(
    ("endpoint", "origins"),
    [
        (None, ("https://examplebucket.oss-cn-hangzhou.aliyuncs.com",)),
        ("http://127.0.0.1:9000", ("http://127.0.0.1:9000",)),
        # ali-oss goes virtual host on localhost, but a form cannot: both must be allowed.
        ("http://localhost:9000", ("http://examplebucket.localhost:9000", "http://localhost:9000")),
        (
            "https://oss-cn-shanghai.aliyuncs.com",
            ("https://examplebucket.oss-cn-shanghai.aliyuncs.com",),
        ),
    ],
)
def test_upload_origins_cover_the_sdk_and_the_form(endpoint, origins) -> None:
    got = upload_origins("examplebucket", "oss-cn-hangzhou", endpoint)
    assert set(got) == set(origins)
    assert sdk_origin("examplebucket", "oss-cn-hangzhou", endpoint) in got
    form = form_url("examplebucket", "oss-cn-hangzhou", endpoint)
    assert any(form.startswith(origin + "/") for origin in got)
