"""loupe_cli without a server: progress display, configuration, file collection, batching."""
from __future__ import annotations

import io

import pytest
import requests

import loupe_cli.__main__ as cli
from loupe_cli import api
from loupe_cli.__main__ import main, parser
from loupe_cli.progress import Progress, format_seconds, render

pytestmark = pytest.mark.unit


def test_render_draws_the_bar_percent_stage_and_eta():
    assert render(0, "queued") == "[" + "-" * 30 + "]   0.0% queued"
    assert render(50, "features", 12.4) == "[" + "#" * 15 + "-" * 15 + "]  50.0% features  ETA 12s"
    assert render(100) == "[" + "#" * 30 + "] 100.0%"
    assert render(250, "x").startswith("[" + "#" * 30 + "] 100.0%")  # clamped
    assert render(-3, "x").startswith("[" + "-" * 30 + "]   0.0%")


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 0.3, 42.4, 185, 3720)] == ["0s", "<1s", "42s", "3m05s", "1h02m"]


def test_progress_redraws_in_place_on_a_terminal():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.update(10, "features")
    progress.update(20, "features")
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1


def test_progress_writes_few_lines_elsewhere():
    out = io.StringIO()
    progress = Progress(out, step=10.0, tty=False)
    for percent in (0, 1, 2, 5, 11, 12, 30):
        progress.update(percent, "features")
    progress.update(31, "evaluation")  # a new stage always shows
    progress.update(100, "completed")
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split("%")[0].split("]")[1].strip() for line in lines] == ["0.0", "11.0", "30.0", "31.0", "100.0"]
    assert "\r" not in out.getvalue()


def test_config_flags_beat_variables_beat_the_env_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("export LOUPE_ENDPOINT=http://file:1/\nexport LOUPE_TRAINING_KEY=filekey\n"
                        "LOUPE_PREDICTION_KEY='filepred'\n# comment\nOTHER=x\n")
    config = api.load_config({}, env={}, env_file=env_file)
    assert (config.endpoint, config.training_key, config.prediction_key) == ("http://file:1", "filekey", "filepred")
    config = api.load_config({}, env={"LOUPE_TRAINING_KEY": "envkey"}, env_file=env_file)
    assert config.training_key == "envkey" and config.endpoint == "http://file:1"
    config = api.load_config({"LOUPE_TRAINING_KEY": "flagkey", "LOUPE_ENDPOINT": None},
                             env={"LOUPE_TRAINING_KEY": "envkey"}, env_file=env_file)
    assert config.training_key == "flagkey"
    with pytest.raises(ValueError, match="LOUPE_ENDPOINT and LOUPE_TRAINING_KEY"):
        api.load_config({}, env={}, env_file=None)


def test_image_files_walks_directories_for_images_and_keeps_named_files(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/1.PNG", "a/deep/2.jpg", "a/notes.txt", "b.dat"):
        (tmp_path / name).write_bytes(b"x")
    found = api.image_files([str(tmp_path / "a"), str(tmp_path / "b.dat")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/1.PNG", "a/deep/2.jpg", "b.dat"]
    with pytest.raises(FileNotFoundError):
        api.image_files([str(tmp_path / "missing")])


def test_batches_respect_the_image_count_and_byte_limits(tmp_path):
    files = []
    for i, size in enumerate([10, 10, 10, 50, 10, 100]):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"x" * size)
        files.append(path)
    groups = [[p.name for p in batch] for batch in api.batches(files, max_images=3, max_bytes=60)]
    assert groups == [["0.png", "1.png", "2.png"], ["3.png", "4.png"], ["5.png"]]  # an oversized file goes alone


def test_usage_errors_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("LOUPE_ENDPOINT", raising=False)
    monkeypatch.delenv("LOUPE_TRAINING_KEY", raising=False)
    assert main(["--env-file", str(tmp_path / "none"), "projects"]) == 2
    assert "missing LOUPE_ENDPOINT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["train"])
    assert exit_.value.code == 2


class _Replies:
    """A stand-in for requests.Session that answers with the given (status, headers) in turn."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = 0

    def request(self, method, url, headers=None, timeout=None, **kw):
        status, headers = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        resp = requests.Response()
        resp.status_code, resp.headers = status, requests.structures.CaseInsensitiveDict(headers)
        resp._content = (b'{"code": "TooManyRequests", "message": "Rate limit is exceeded."}'
                         if status == 429 else b"[]")
        return resp


def _client(replies: _Replies, **kw) -> tuple[api.Client, list[float]]:
    waits: list[float] = []
    client = api.Client(api.Config("http://loupe.test", "key"), sleep=waits.append, **kw)
    client.http = replies
    return client, waits


def test_a_429_is_retried_after_the_wait_the_server_asks_for():
    replies = _Replies((429, {"Retry-After": "2"}), (429, {}), (429, {"Retry-After": "600"}),
                       (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), (200, {}))
    client, waits = _client(replies)
    assert client.train("GET", "/projects") == []
    # Retry-After in seconds; 1 s when absent or a date; never more than MAX_RETRY_WAIT.
    assert waits == [2.0, 1.0, api.MAX_RETRY_WAIT, 1.0]
    assert replies.calls == 5


def test_a_429_that_persists_ends_in_a_clear_error_after_the_retries():
    replies = _Replies((429, {"Retry-After": "1"}))
    client, waits = _client(replies, retries=3)
    with pytest.raises(api.ApiError) as err:
        client.train("GET", "/projects")
    assert replies.calls == 4 and waits == [1.0, 1.0, 1.0]  # the first try and 3 retries
    assert err.value.status == 429 and err.value.code == "TooManyRequests"
    assert "Rate limit is exceeded" in str(err.value)
    assert "after 3 retries and 3 s of waiting" in str(err.value)
    assert api.RETRIES_429 == 5  # the CLI's default


def test_the_command_exits_1_with_the_429_message(capsys, monkeypatch):
    replies = _Replies((429, {"Retry-After": "1"}))
    monkeypatch.setattr(cli, "Client", lambda config: _client(replies)[0])
    assert main(["--endpoint", "http://loupe.test", "--training-key", "k", "projects"]) == 1
    assert "loupe: TooManyRequests: Rate limit is exceeded. (still refused after 5 retries" in capsys.readouterr().err
    assert replies.calls == api.RETRIES_429 + 1


def test_export_dataset_reads_another_source_without_a_loupe(capsys, tmp_path, monkeypatch):
    """From Azure with no Loupe configured: the source's calls, paced and retried as any."""
    monkeypatch.delenv("LOUPE_ENDPOINT", raising=False)
    monkeypatch.delenv("LOUPE_TRAINING_KEY", raising=False)
    replies = _Replies((429, {"Retry-After": "1"}))
    made = []
    monkeypatch.setattr(cli, "Client", lambda config: made.append(config) or _client(replies)[0])
    out = tmp_path / "out"
    assert main(["--env-file", str(tmp_path / "none"), "export-dataset", "p", str(out),
                 "--source-endpoint", "https://cv.test/", "--source-key", "k"]) == 1
    assert "loupe: TooManyRequests" in capsys.readouterr().err
    assert made[0].endpoint == "https://cv.test" and made[0].training_key == "k"
    assert not out.exists()  # nothing written before the project is found
    assert main(["--endpoint", "http://loupe.test", "--training-key", "k", "export-dataset", "p",
                 str(out), "--source-key", "k"]) == 2
    assert "needs both --source-endpoint and --source-key" in capsys.readouterr().err
