"""Per-run uids: a uid is handed out only when no lock file says it is (or was) in use, so
no process of it can exist; a daemon that died mid-run leaves its uids out of the pool
until a sweep finds no process of them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from tandem.isolation import identity

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="run uids need a root daemon")


@pytest.fixture
def lock_dir() -> Iterator[object]:
    before = set(identity._lock_dir().iterdir())
    yield identity._lock_dir()
    for path in set(identity._lock_dir().iterdir()) - before:
        path.unlink(missing_ok=True)


def test_a_released_uid_leaves_no_trace(lock_dir: object) -> None:
    user = identity.allocate()
    assert user is not None
    lock = identity._lock_dir() / str(user.uid)
    assert lock.exists()
    user.release()
    assert not lock.exists()


def test_a_uid_with_a_lock_file_is_never_handed_out(
    lock_dir: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead daemon's file: the uid may still have processes, so it is skipped.
    left = identity.UID_BASE + 7
    (identity._lock_dir() / str(left)).touch()
    picks = iter([7, 7, 8])
    monkeypatch.setattr(identity.secrets, "randbelow", lambda _: next(picks))
    user = identity.allocate()
    assert user is not None and user.uid == identity.UID_BASE + 8
    user.release()


def test_sweep_frees_only_uids_no_process_and_no_daemon_holds(lock_dir: object) -> None:
    folder = identity._lock_dir()
    dead, alive = identity.UID_BASE + 11, identity.UID_BASE + 12
    (folder / str(dead)).touch()
    (folder / str(alive)).touch()
    held = identity.allocate()
    assert held is not None
    survivor = subprocess.Popen(["sleep", "60"], user=alive, group=alive, extra_groups=[])
    try:
        assert identity.sweep() >= 1
        assert not (folder / str(dead)).exists()
        assert (folder / str(alive)).exists()  # a process of it lives on
        assert (folder / str(held.uid)).exists()  # a live run's
    finally:
        survivor.kill()
        survivor.wait()
        held.release()
