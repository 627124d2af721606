"""The heartbeat file: written while connected, removed when not, stale and missing detected."""

from __future__ import annotations

import time
from pathlib import Path

from bot.health import HEARTBEAT_MAX_AGE, check_heartbeat, write_heartbeat

NOW = 1_767_225_600.0


def test_connected_heartbeat_is_written_and_healthy(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    assert float(path.read_text(encoding="utf-8")) == NOW
    ok, reason = check_heartbeat(path, now=NOW + 30)
    assert ok
    assert "connected" in reason
    assert "30s" in reason


def test_heartbeat_with_the_real_clock_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True)
    assert check_heartbeat(path)[0]
    assert abs(float(path.read_text(encoding="utf-8")) - time.time()) < 60


def test_write_creates_missing_directories_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["heartbeat"]


def test_rewriting_replaces_the_stamp(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    write_heartbeat(path, connected=True, now=NOW + 500)
    assert check_heartbeat(path, now=NOW + 510)[0]


def test_disconnected_removes_the_file_so_the_check_fails_at_once(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    write_heartbeat(path, connected=False)
    assert not path.exists()
    ok, reason = check_heartbeat(path, now=NOW)
    assert not ok
    assert "not connected" in reason


def test_disconnected_without_a_file_is_fine(tmp_path: Path) -> None:
    write_heartbeat(tmp_path / "never-written", connected=False)
    assert not (tmp_path / "never-written").exists()


def test_missing_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    ok, reason = check_heartbeat(path)
    assert not ok
    assert str(path) in reason


def test_stale_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    assert check_heartbeat(path, now=NOW + HEARTBEAT_MAX_AGE)[0]
    ok, reason = check_heartbeat(path, now=NOW + HEARTBEAT_MAX_AGE + 1)
    assert not ok
    assert "connection lost" in reason
    assert f"{HEARTBEAT_MAX_AGE + 1:.0f}s ago" in reason


def test_custom_max_age(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    write_heartbeat(path, connected=True, now=NOW)
    assert not check_heartbeat(path, max_age=5, now=NOW + 6)[0]
    assert check_heartbeat(path, max_age=600, now=NOW + 300)[0]


def test_garbage_heartbeat_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    path.write_text("not a number\n", encoding="utf-8")
    ok, reason = check_heartbeat(path, now=NOW)
    assert not ok
    assert "unreadable" in reason


def test_heartbeat_path_that_is_a_directory_is_unreadable(tmp_path: Path) -> None:
    ok, reason = check_heartbeat(tmp_path, now=NOW)
    assert not ok
    assert "unreadable" in reason
