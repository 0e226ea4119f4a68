"""`shoal submit`: one job per line, a summary, and a second run that resumes."""

from __future__ import annotations

import json
from pathlib import Path

from shoal import keys
from tests.conftest import Live
from tests.support import decode_any, run_cli

LINES = ["The first line.", "", "The second line, a little longer.", "\u200b", "The last line."]


def test_a_file_of_lines_becomes_audio_files_and_a_resumable_summary(
    live: Live, tmp_path: Path
) -> None:
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(LINES) + "\n")
    output = tmp_path / "out"
    env = {"SHOAL_URL": live.url}
    before = len(live.redis.keys(keys.job("*")))

    first = run_cli("submit", "--file", str(source), "-o", str(output), "-f", "flac", env=env)
    assert first.returncode == 1, first.stderr  # the invisible line cannot be spoken
    assert "3 of 4 lines spoken" in first.stdout and "line 4: failed: no_speech" in first.stdout
    summary = json.loads((output / "summary.json").read_text())
    assert summary["counts"] == {"succeeded": 3, "failed": 1}
    spoken = {item["line"]: item for item in summary["items"]}
    assert sorted(spoken) == [1, 3, 4, 5]  # the empty line 2 is no job
    for number in (1, 3, 5):
        audio = decode_any((output / spoken[number]["file"]).read_bytes(), "flac")
        assert abs(audio.duration - spoken[number]["duration_seconds"]) < 0.05
    assert len(live.redis.keys(keys.job("*"))) == before + 4

    # Lose one file, then run again: only that line and the failed one are done anew.
    (output / spoken[3]["file"]).unlink()
    second = run_cli("submit", "--file", str(source), "-o", str(output), "-f", "flac", env=env)
    assert second.returncode == 1
    assert "(2 this run)" in second.stdout
    again = {
        item["line"]: item for item in json.loads((output / "summary.json").read_text())["items"]
    }
    assert again[3]["job_id"] == spoken[3]["job_id"]  # its job found again, not made twice
    assert (output / spoken[3]["file"]).exists()
    assert again[4]["job_id"] != spoken[4]["job_id"] and again[4]["tries"] == 1  # a new try
    assert again[1]["job_id"] == spoken[1]["job_id"]
    assert len(live.redis.keys(keys.job("*"))) == before + 5  # just the retried line
