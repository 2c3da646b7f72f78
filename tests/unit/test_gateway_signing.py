"""Signed image URIs and API version paths."""
from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.exceptions import NotFound

from loupe_gateway import signing, versions

pytestmark = pytest.mark.unit

PATH = "/customvision/v3.3/training/projects/p/images/i/original"


def _query(now=1000.0, ttl=60, secret="s3cret", account="acct"):
    q = parse_qs(signing.signed_query(secret, PATH, account, now, ttl))
    return q["a"][0], q["exp"][0], q["sig"][0]


def test_signed_query_verifies_until_it_expires():
    account, exp, sig = _query()
    assert account == "acct" and exp == "1060"
    assert signing.verify("s3cret", PATH, account, exp, sig, now=1059)
    assert signing.verify("s3cret", PATH, account, exp, sig, now=1060)
    assert not signing.verify("s3cret", PATH, account, exp, sig, now=1061)


def test_any_change_breaks_the_signature():
    account, exp, sig = _query()
    assert not signing.verify("other", PATH, account, exp, sig, now=0)
    assert not signing.verify("s3cret", PATH.replace("original", "resized"), account, exp, sig, 0)
    assert not signing.verify("s3cret", PATH, "other-account", exp, sig, now=0)
    assert not signing.verify("s3cret", PATH, account, str(int(exp) + 1), sig, now=0)
    assert not signing.verify("s3cret", PATH, account, "soon", sig, now=0)
    assert not signing.verify("s3cret", PATH, account, exp, "", now=0)


def _map() -> Map:
    return Map(
        [Rule(versions.TRAINING_PREFIX + "/projects", endpoint="t"),
         Rule(versions.PREDICTION_PREFIX + "/<p>/classify", endpoint="p")],
        converters={"tver": versions.TrainingVersion, "pver": versions.PredictionVersion},
    )


@pytest.mark.parametrize("version", versions.TRAINING_VERSIONS)
def test_every_training_version_matches(version):
    urls = _map().bind("loupe")
    assert urls.match(f"/customvision/{version}/training/projects") == ("t", {"version": version})


@pytest.mark.parametrize("version", ["v3.0", "v3.1"])
def test_prediction_versions_match(version):
    urls = _map().bind("loupe")
    assert urls.match(f"/customvision/{version}/prediction/x/classify")[0] == "p"


@pytest.mark.parametrize(
    "path",
    ["/customvision/v2.0/training/projects", "/customvision/v3.5/training/projects",
     "/customvision/v3.4/training/projects", "/customvision/v3.2/prediction/x/classify",
     "/customvision/v3.00/training/projects"],
)
def test_unknown_versions_do_not_match(path):
    with pytest.raises(NotFound):
        _map().bind("loupe").match(path)


def test_sdk_default_versions_are_served():
    from azure.cognitiveservices.vision.customvision.prediction._configuration import (
        CustomVisionPredictionClientConfiguration,
    )
    from azure.cognitiveservices.vision.customvision.training._configuration import (
        CustomVisionTrainingClientConfiguration,
    )

    from msrest.authentication import ApiKeyCredentials

    creds = ApiKeyCredentials(in_headers={"Training-Key": "k"})
    training = CustomVisionTrainingClientConfiguration("http://x", creds).base_url
    prediction = CustomVisionPredictionClientConfiguration("http://x", creds).base_url
    assert training.split("/")[2] in versions.TRAINING_VERSIONS
    assert prediction.split("/")[2] in versions.PREDICTION_VERSIONS
