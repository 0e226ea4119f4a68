"""`shoal say` end to end: the real command, a real gateway and worker."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Live
from tests.support import assert_speech, decode_any, run_cli


def test_say_writes_the_audio_in_the_format_of_the_file(live: Live, tmp_path: Path) -> None:
    output = tmp_path / "hello.mp3"
    result = run_cli(
        "say", "Hello from the command line.", "-o", str(output), env={"SHOAL_URL": live.url}
    )
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stderr and "job_" in result.stderr
    assert_speech(decode_any(output.read_bytes(), "mp3"), 22050, 1.0, 5.0)


def test_say_takes_voice_format_language_and_speed(live: Live, tmp_path: Path) -> None:
    output = tmp_path / "guten-tag.out"
    args = ["say", "Guten Tag, wie geht es?", "-o", str(output), "--format", "opus"]
    args += ["--language", "de", "--speed", "1.5", "--url", live.url]
    result = run_cli(*args, env={})
    assert result.returncode == 0, result.stderr
    assert_speech(decode_any(output.read_bytes(), "opus"), 48000, 0.5, 4.0)


def test_say_explains_what_went_wrong(live: Live, tmp_path: Path) -> None:
    result = run_cli(
        "say",
        "Hi",
        "-o",
        str(tmp_path / "x.wav"),
        "--voice",
        "klingon",
        env={"SHOAL_URL": live.url},
    )
    assert result.returncode == 1
    assert "unknown_voice" in result.stderr and "klingon" in result.stderr
    nothing = run_cli(
        "say", "Hi", "-o", str(tmp_path / "y.wav"), "--url", "http://127.0.0.1:9", env={}
    )
    assert nothing.returncode == 1 and "cannot reach the gateway" in nothing.stderr
    failed = run_cli("say", "\u200b", "-o", str(tmp_path / "z.wav"), env={"SHOAL_URL": live.url})
    assert failed.returncode == 1 and "no_speech" in failed.stderr
    assert not (tmp_path / "z.wav").exists()
