"""loupe_common.kafka.KafkaSecurity: the one place every Kafka client's security comes from."""
from __future__ import annotations

import pytest

from loupe_common import kafka as lk
from loupe_common.config import ConfigError


def test_plaintext_by_default():
    assert lk.security_from_env({}).client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_options_reach_kafka_python():
    s = lk.security_from_env({"LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LOUPE_KAFKA_USERNAME": "loupe",
                              "LOUPE_KAFKA_PASSWORD": "pw", "LOUPE_KAFKA_SSL_CA_FILE": "/ca.pem"})
    assert s.client_options() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "loupe", "sasl_plain_password": "pw", "ssl_cafile": "/ca.pem",
    }
    assert "pw" not in repr(s)


def test_the_ca_file_only_applies_to_tls():
    s = lk.security_from_env({"LOUPE_KAFKA_SSL_CA_FILE": "/ca.pem"})
    assert "ssl_cafile" not in s.client_options()


@pytest.mark.parametrize("env, message", [
    ({"LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL"}, "LOUPE_KAFKA_SECURITY_PROTOCOL"),
    ({"LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "LOUPE_KAFKA_USERNAME": "u"}, "LOUPE_KAFKA_PASSWORD"),
    ({"LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "LOUPE_KAFKA_USERNAME": "u", "LOUPE_KAFKA_PASSWORD": "p",
      "LOUPE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "LOUPE_KAFKA_SASL_MECHANISM"),
])
def test_a_setting_the_clients_would_refuse_stops_at_start_up(env, message):
    with pytest.raises(ConfigError, match=message):
        lk.security_from_env(env)
