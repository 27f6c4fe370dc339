# ruff: noqa: F811 - pytest passes the imported `lab` fixture by name
"""Greedy scripts: each one is stopped by a limit, reported with a clear status and error,
leaves nothing running, and the daemon serves the next run as before."""

from __future__ import annotations

import os
from pathlib import Path

from lab import Lab, lab  # noqa: F401 - the fixture
from tandem.isolation.cgroups import RUNNER_MEMORY_MB
from tandem.isolation.namespace import TMP_BYTES, TMP_INODES, WORKDIR_BYTES
from tandem.isolation.process import FILE_SIZE_BYTES

SHORT = {"limits": {"timeout_s": 3, "memory_mb": 256}}
WORKFLOWS = {
    "fork_bomb": (
        """
        import os
        def handler(trigger, tools, virtual_files, subagent):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """,
        SHORT,
    ),
    "big_alloc": (
        """
        def handler(trigger, tools, virtual_files, subagent):
            block = bytearray(2 * 1024 ** 3)
            return len(block)
        """,
        SHORT,
    ),
    "busy_loop": (
        """
        def handler(trigger, tools, virtual_files, subagent):
            while True:
                pass
        """,
        SHORT,
    ),
    "sleep_forever": (
        """
        import threading
        def handler(trigger, tools, virtual_files, subagent):
            threading.Event().wait()
        """,
        SHORT,
    ),
    "escape_by_setsid": (
        """
        import os, subprocess
        def handler(trigger, tools, virtual_files, subagent):
            # setsid(1) gives a new session; the shell forks `sleep` and exits: a daemon
            # in the classic double-fork way, outside the runner's process group.
            shell = "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"
            out = subprocess.run(["setsid", "sh", "-c", shell], capture_output=True, text=True)
            pid = int(out.stdout)
            os.kill(pid, 0)  # it is alive as the handler returns
            return {"daemon_pid": pid, "session": os.getsid(pid) != os.getsid(0)}
        """,
        # Room to finish on a loaded machine: this test is about what outlives a run that
        # ended normally; the timeout path is tested by the busy-loop and sleep attacks.
        {"limits": {"timeout_s": 30}},
    ),
    "flood_stdout": (
        """
        import sys
        def handler(trigger, tools, virtual_files, subagent):
            chunk = b"x" * (1024 * 1024)
            for _ in range(1024):
                sys.stdout.buffer.write(chunk)
            return "wrote 1 GiB"
        """,
        {"limits": {"timeout_s": 60}},
    ),
    "fill_disk": (
        """
        import os
        def fill(path, limit):
            written = 0
            try:
                with open(path, "wb") as out:
                    chunk = b"x" * (1024 * 1024)
                    while written < limit:
                        written += out.write(chunk)
                        out.flush()
            except OSError as error:
                return {"written": written, "error": error.errno}
            return {"written": written, "error": None}

        def handler(trigger, tools, virtual_files, subagent):
            return {path: fill(path, trigger["limit"]) for path in trigger["paths"]}
        """,
        {"limits": {"timeout_s": 60}},
    ),
    "many_files": (
        """
        import os
        def handler(trigger, tools, virtual_files, subagent):
            made = 0
            try:
                for i in range(30000):
                    with open(f"f{i}", "wb") as out:
                        out.write(b"y" * 4096)
                    made += 1
            except OSError as error:
                return {"made": made, "error": error.errno}
            return {"made": made, "error": None, "cwd": os.getcwd()}
        """,
        {"limits": {"timeout_s": 60}},
    ),
    "empty_files": (
        """
        import os, tempfile
        def handler(trigger, tools, virtual_files, subagent):
            folder, made = tempfile.gettempdir(), 0
            try:
                while made < trigger["limit"]:
                    os.close(os.open(f"{folder}/e{made}", os.O_CREAT | os.O_WRONLY))
                    made += 1
            except OSError as error:
                return {"made": made, "error": error.errno, "folder": folder}
            return {"made": made, "error": None, "folder": folder}
        """,
        {"limits": {"timeout_s": 60}},
    ),
    "children_memory": (
        """
        import os
        def handler(trigger, tools, virtual_files, subagent):
            # Each child holds less than memory_mb; together they hold far more.
            release_r, release_w = os.pipe()
            reported = []
            for _ in range(trigger["children"]):
                ready_r, ready_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(release_w)  # or no child sees the release
                    try:
                        block = b"x" * (trigger["mb"] * 1024 * 1024)
                        os.write(ready_w, b"1")
                        os.read(release_r, 1)
                    except BaseException as error:
                        print("child:", repr(error), flush=True)
                    finally:
                        os._exit(0)
                os.close(ready_w)
                if os.read(ready_r, 1):
                    reported.append(pid)
                os.close(ready_r)
            held = [pid for pid in reported if os.waitpid(pid, os.WNOHANG) == (0, 0)]
            os.close(release_w)
            for pid in reported:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            return {"held": len(held)}
        """,
        {"limits": {"timeout_s": 60, "memory_mb": 64}},
    ),
}


def test_fork_bomb_is_bounded_and_killed(lab: Lab) -> None:
    record = lab.run("fork_bomb")
    assert record.status == "timed_out", record.error
    lab.assert_contained()


def test_two_gigabytes_is_refused(lab: Lab) -> None:
    record = lab.run("big_alloc")
    assert record.status == "failed"
    assert "MemoryError" in (record.error or "")
    lab.assert_contained()


def test_busy_loop_and_sleep_time_out(lab: Lab) -> None:
    for workflow in ("busy_loop", "sleep_forever"):
        record = lab.run(workflow)
        assert record.status == "timed_out", (workflow, record.error)
        assert "timeout of 3s" in (record.error or "")
        lab.assert_contained()


def test_setsid_grandchild_dies_with_the_run(lab: Lab) -> None:
    record = lab.run("escape_by_setsid")
    assert record.status == "succeeded", record.error
    assert record.output["daemon_pid"] > 0 and record.output["session"]
    lab.assert_contained()  # the `sleep 1000` it left is gone


def test_a_gigabyte_of_stdout_is_capped(lab: Lab) -> None:
    record = lab.run("flood_stdout")
    assert record.status == "succeeded", record.error
    truncated = [e.data for e in record.events if e.kind == "output.truncated"]
    assert truncated and truncated[0]["stream"] == "stdout"
    assert truncated[0]["kept_bytes"] + truncated[0]["dropped_bytes"] == 1024**3
    assert len(lab.stdout(record)) == truncated[0]["kept_bytes"] <= 256 * 1024
    lab.assert_contained()


def test_ten_gigabytes_to_disk_stop_at_a_limit(lab: Lab) -> None:
    record = lab.run("fill_disk", {"paths": ["big.bin"], "limit": 10 * 1024**3})
    assert record.status == "succeeded", record.error
    outcome = record.output["big.bin"]
    if lab.tier == "namespace":  # the working directory is a small tmpfs
        assert outcome == {"written": WORKDIR_BYTES, "error": 28}  # ENOSPC
    else:  # RLIMIT_FSIZE; the process tier has no quota on the number of files
        assert outcome == {"written": FILE_SIZE_BYTES, "error": 27}  # EFBIG
    lab.assert_contained()


def test_filling_root_run_and_shm_is_refused_or_bounded(lab: Lab) -> None:
    tmp = f"/tmp/tandem-lab-fill-{os.getpid()}"
    paths = ["/fill", "/run/fill", tmp]
    if lab.tier == "namespace":
        paths.append("/dev/shm/fill")  # the process tier shares the host's /dev/shm
    try:
        record = lab.run("fill_disk", {"paths": paths, "limit": 1024**3})
    finally:
        if lab.tier == "process":  # the host's /tmp keeps what a process-tier run wrote
            Path(tmp).unlink(missing_ok=True)
    assert record.status == "succeeded", record.error
    out = record.output
    out["/tmp/fill"] = out.pop(tmp)
    assert out["/fill"]["written"] == out["/run/fill"]["written"] == 0
    if lab.tier == "namespace":
        assert out["/fill"]["error"] == out["/run/fill"]["error"] == 30  # EROFS
        assert out["/tmp/fill"] == {"written": TMP_BYTES, "error": 28}
        assert out["/dev/shm/fill"]["error"] == 28
        assert out["/dev/shm/fill"]["written"] <= 16 * 1024 * 1024
    else:
        assert out["/fill"]["error"] == out["/run/fill"]["error"] == 13  # EACCES
        assert out["/tmp/fill"] == {"written": FILE_SIZE_BYTES, "error": 27}
    lab.assert_contained()


def test_thousands_of_small_files_are_bounded_and_removed(lab: Lab) -> None:
    record = lab.run("many_files")
    assert record.status == "succeeded", record.error
    if lab.tier == "namespace":
        assert record.output["error"] == 28  # the tmpfs is full
        assert record.output["made"] <= WORKDIR_BYTES // 4096
    else:
        assert record.output["made"] == 30000
        cwd = record.output["cwd"]
        assert not os.path.exists(cwd), "the run's folder outlived the run"
    lab.assert_contained()


def test_a_flood_of_empty_files_ends_at_the_inode_limit(lab: Lab) -> None:
    record = lab.run("empty_files", {"limit": 4 * TMP_INODES})
    assert record.status == "succeeded", record.error
    if lab.tier == "namespace":  # /tmp is a tmpfs with an inode limit
        assert record.output["folder"] == "/tmp"
        assert record.output["error"] == 28  # ENOSPC
        assert record.output["made"] < TMP_INODES
    else:  # the run's own folder on the host's disk: no inode limit, removed after
        assert record.output["made"] == 4 * TMP_INODES
        assert not os.path.exists(record.output["folder"])
    lab.assert_contained()


def test_memory_mb_bounds_the_run_as_a_whole(lab: Lab) -> None:
    # Six children of 40 MiB each under memory_mb 64: 240 MiB in all.
    record = lab.run("children_memory", {"children": 6, "mb": 40})
    assert record.status == "succeeded", record.error
    reached = [e.data for e in record.events if e.kind == "memory.limit_reached"]
    if any("memory_mb holds for each run as a whole" in line for line in lab.daemon.log):
        assert record.output["held"] * 40 <= 64 + RUNNER_MEMORY_MB
        assert reached and reached[0]["limit_mb"] == 64 + RUNNER_MEMORY_MB
    else:  # the documented fallback: memory_mb holds per process only
        assert any("memory_mb holds per process only" in line for line in lab.daemon.log)
        assert record.output["held"] == 6 and not reached
    lab.assert_contained()
