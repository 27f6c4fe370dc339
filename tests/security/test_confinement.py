# ruff: noqa: F811 - pytest passes the imported `lab` fixture by name
"""Hostile scripts: what they try to reach on the host, and what they get instead.

No test sends a packet beyond loopback: "no network" is shown by the interfaces the
sandbox sees, and the one connection attempted is to a server this test runs on
127.0.0.1 (and an abstract unix socket), which the sandbox must not reach.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path

import pytest
from lab import BOTH_LAUNCHES, CANARY, Lab, lab  # noqa: F401 - the fixture

# The zygote builds the sandbox itself: every attack here runs against both launch paths.
pytestmark = pytest.mark.parametrize("lab", BOTH_LAUNCHES, indirect=True)

PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)

def attempt(call):
    try:
        return {"ok": call()}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno, str(error.errno))}

def sys_errno(result):
    code = ctypes.get_errno()
    return {"ok": result} if result != -1 else {"errno": errno.errorcode.get(code, str(code))}
"""

WORKFLOWS = {
    "read_secrets": (
        PROBE
        + """
def read(path):
    if os.path.isdir(path):
        return os.listdir(path)
    with open(path, "rb") as f:
        return f.read(4096).decode("utf-8", "replace")

def handler(trigger, tools, virtual_files, subagent):
    found = {"env": dict(os.environ)}
    for path in trigger["paths"]:
        found[path] = attempt(lambda: read(path))
    environs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        environs[pid] = attempt(lambda: read(f"/proc/{pid}/environ"))
    found["environs"] = environs
    print(found)  # into the trace too, where a leak would also show
    return found
""",
        {},
    ),
    "list_processes": (
        """
import os
def handler(trigger, tools, virtual_files, subagent):
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            seen[pid] = None
    return seen
""",
        {},
    ),
    "reach_network": (
        PROBE
        + """
import socket
def connect(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        return "connected"

def handler(trigger, tools, virtual_files, subagent):
    return {
        "interfaces": [name for _, name in socket.if_nameindex()],
        "tcp": attempt(lambda: connect(socket.AF_INET, ("127.0.0.1", trigger["port"]))),
        "abstract": attempt(lambda: connect(socket.AF_UNIX, "\\0" + trigger["abstract"])),
    }
""",
        {},
    ),
    "attack_processes": (
        PROBE
        + """
import signal
PTRACE_ATTACH = 16
def handler(trigger, tools, virtual_files, subagent):
    daemon = trigger["daemon_pid"]
    return {
        "kill_daemon": attempt(lambda: os.kill(daemon, signal.SIGKILL)),
        "ptrace_daemon": sys_errno(libc.ptrace(PTRACE_ATTACH, daemon, 0, 0)),
        "ptrace_pid1": sys_errno(libc.ptrace(PTRACE_ATTACH, 1, 0, 0)),
        "kill_pid1": attempt(lambda: os.kill(1, signal.SIGKILL)),
    }
""",
        {},
    ),
    "escape_namespaces": (
        PROBE
        + """
import subprocess
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
def handler(trigger, tools, virtual_files, subagent):
    tool = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True)
    return {
        "unshare_mount": sys_errno(libc.unshare(CLONE_NEWNS)),
        "unshare_user": sys_errno(libc.unshare(CLONE_NEWUSER)),
        "mount": sys_errno(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "clone3": sys_errno(libc.syscall(435, None, 0)),
        "unshare_tool": tool.returncode,
    }
""",
        {},
    ),
    "setuid_binary": (
        """
import subprocess
def handler(trigger, tools, virtual_files, subagent):
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines()
    )
    su = subprocess.run(["su", "root", "-c", "id -u"], capture_output=True, text=True)
    return {
        "no_new_privs": status["NoNewPrivs"].strip(),
        "cap_eff": status["CapEff"].strip(),
        "uid": status["Uid"].split(),
        "su_code": su.returncode,
        "su_out": su.stdout + su.stderr,
    }
""",
        {},
    ),
    "terminal_and_uring": (
        PROBE
        + """
TIOCSTI = 0x5412
def handler(trigger, tools, virtual_files, subagent):
    char = ctypes.c_char(b"x")
    return {
        "tiocsti": sys_errno(libc.ioctl(1, TIOCSTI, ctypes.byref(char))),
        "dev_tty": attempt(lambda: os.open("/dev/tty", os.O_RDWR) and "opened"),
        "io_uring": sys_errno(libc.syscall(425, 8, ctypes.create_string_buffer(120))),
    }
""",
        {},
    ),
    "tamper_python": (
        PROBE
        + """
import sys, sysconfig
import tandem_sdk
def write(path):
    with open(path, "w") as f:
        f.write("import os; os.system('echo pwned')\\n")
    return "written"

def handler(trigger, tools, virtual_files, subagent):
    sdk = os.path.dirname(tandem_sdk.__file__)
    return {
        "site_packages": attempt(lambda: write(sysconfig.get_paths()["purelib"] + "/evil.pth")),
        "sdk": attempt(lambda: write(sdk + "/evil.py")),
        "stdlib": attempt(lambda: write(sysconfig.get_paths()["stdlib"] + "/sitecustomize.py")),
        "isolated": sys.flags.isolated,
        "python_env": sorted(k for k in os.environ if k.startswith("PYTHON")),
    }
""",
        {},
    ),
    "inherited_fds": (
        """
import os
def handler(trigger, tools, virtual_files, subagent):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return fds
""",
        {},
    ),
    "move_socket": (
        PROBE
        + """
def handler(trigger, tools, virtual_files, subagent):
    path = os.environ["TANDEM_TOOLHOST"].removeprefix("unix:")
    folder = os.path.dirname(path)
    return {
        "rename": attempt(lambda: os.rename(path, path + ".moved")),
        "unlink": attempt(lambda: os.unlink(path)),
        "replace": attempt(lambda: os.symlink("/tmp/elsewhere", folder + "/other.sock")),
        "still_works": tools.util.echo(text="after"),
    }
""",
        {"tools": ["util.*"]},
    ),
}
PLUGINS = {
    "vault": '''
from tandem_sdk import tool

@tool(side_effects=False)
def peek() -> bool:
    """Whether the plugin holds its secret."""
    import os
    return "VAULT_TOKEN" in os.environ
'''
}
PLUGIN_MANIFESTS = {"vault": {"secrets": ["VAULT_TOKEN"]}}


def _denied(outcome: dict[str, object], *codes: str) -> bool:
    return "ok" not in outcome and outcome.get("errno") in codes


def _children(pid: int, needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if int(ppid) == pid and needle.encode() in cmdline.replace(b"\0", b" "):
                found.append(int(entry.name))
    return found


def test_secrets_of_the_host_and_daemon_stay_out_of_reach(lab: Lab) -> None:
    secret_file = lab.project.root / "credentials"
    secret_file.write_text(CANARY)
    secret_file.chmod(0o600)
    plugin_pids = _children(lab.daemon.pid, "--name vault")
    assert plugin_pids, "the vault plugin (which holds a secret) is running"
    paths = [
        str(secret_file),
        str(lab.project.config.database),
        "/etc/shadow",
        "/root/.ssh",
        "/root/.ssh/id_ed25519",
        "/proc/1/environ",
        f"/proc/{lab.daemon.pid}/environ",
        f"/proc/{plugin_pids[0]}/environ",
    ]
    record = lab.run("read_secrets", {"paths": paths})
    assert record.status == "succeeded", record.error
    everything = json.dumps(record.output) + lab.stdout(record)
    assert CANARY not in everything
    assert set(record.output["env"]) <= {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "PWD",
        "LC_CTYPE",
        *(k for k in record.output["env"] if k.startswith("TANDEM_")),
    }
    for path in paths:
        assert "ok" not in record.output[path], (path, record.output[path])
    lab.assert_contained()


def test_host_processes_are_invisible(lab: Lab) -> None:
    record = lab.run("list_processes")
    assert record.status == "succeeded", record.error
    cmdlines = [c or "" for c in record.output.values()]
    if lab.tier == "process":  # a documented gap (docs/sandbox.md), pinned here
        assert any("tandem.cli" in c for c in cmdlines)
        lab.assert_contained()
        return
    assert not any("tandem.cli" in c or "plugin_server" in c for c in cmdlines), cmdlines
    assert str(lab.daemon.pid) not in record.output or lab.daemon.pid < 10
    assert len(record.output) <= 6, cmdlines  # pid 1, the shell, the runner, a thread or two
    lab.assert_contained()


def test_no_network_but_the_toolhost_socket(lab: Lab) -> None:
    abstract = f"tandem-lab-{secrets.token_hex(6)}"
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix_server,
    ):
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        unix_server.bind("\0" + abstract)
        unix_server.listen(8)
        port = server.getsockname()[1]
        record = lab.run("reach_network", {"port": port, "abstract": abstract})
        assert record.status == "succeeded", record.error
        out = record.output
        if lab.tier == "process":  # a documented gap (docs/sandbox.md), pinned here
            assert out["tcp"] == out["abstract"] == {"ok": "connected"}
            lab.assert_contained()
            return
        assert out["interfaces"] == ["lo"]
        assert _denied(out["tcp"], "ECONNREFUSED")
        assert _denied(out["abstract"], "ECONNREFUSED")
        for listener in (server, unix_server):
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody came
    lab.assert_contained()


def test_the_daemon_and_pid_1_cannot_be_signalled_or_traced(lab: Lab) -> None:
    record = lab.run("attack_processes", {"daemon_pid": lab.daemon.pid})
    assert record.status == "succeeded", record.error
    out = record.output
    # In the namespace the daemon's pid does not exist; outside it belongs to root.
    assert _denied(out["kill_daemon"], "ESRCH", "EPERM")
    assert _denied(out["ptrace_daemon"], "EPERM", "ESRCH")
    assert _denied(out["ptrace_pid1"], "EPERM")
    assert _denied(out["kill_pid1"], "EPERM")
    lab.assert_contained()


def test_no_new_namespaces_or_mounts(lab: Lab) -> None:
    record = lab.run("escape_namespaces")
    assert record.status == "succeeded", record.error
    out = record.output
    assert _denied(out["unshare_mount"], "EPERM")
    assert _denied(out["mount"], "EPERM")
    if lab.tier == "namespace":  # the process tier leaves user namespaces to the kernel
        assert _denied(out["unshare_user"], "EPERM")
        assert _denied(out["clone3"], "ENOSYS")  # so that libc falls back to a filtered clone
        assert out["unshare_tool"] != 0
    lab.assert_contained()


def test_a_setuid_binary_gains_nothing(lab: Lab) -> None:
    record = lab.run("setuid_binary")
    assert record.status == "succeeded", record.error
    out = record.output
    assert out["no_new_privs"] == "1"
    assert int(out["cap_eff"], 16) == 0
    assert int(out["uid"][0]) != 0
    assert out["su_code"] != 0
    assert out["su_out"].strip() != "0"
    lab.assert_contained()


def test_no_terminal_injection_and_no_io_uring(lab: Lab) -> None:
    record = lab.run("terminal_and_uring")
    assert record.status == "succeeded", record.error
    out = record.output
    assert _denied(out["dev_tty"], "ENXIO")  # a new session: no controlling terminal
    if lab.tier == "namespace":  # refused by the filter before the kernel looks at the fd
        assert _denied(out["tiocsti"], "EPERM")
        assert _denied(out["io_uring"], "EPERM")
    else:  # stdout is a pipe; io_uring is not filtered in the process tier
        assert _denied(out["tiocsti"], "ENOTTY")
    lab.assert_contained()


def test_python_itself_cannot_be_tampered_with(lab: Lab) -> None:
    record = lab.run("tamper_python")
    assert record.status == "succeeded", record.error
    out = record.output
    code = "EROFS" if lab.tier == "namespace" else "EACCES"
    for target in ("site_packages", "sdk", "stdlib"):
        assert _denied(out[target], code), (target, out[target])
    assert out["isolated"] == 1
    assert out["python_env"] == []
    lab.assert_contained()


def test_no_descriptor_of_the_daemon_is_inherited(lab: Lab) -> None:
    daemon_fds = set()
    for fd in Path(f"/proc/{lab.daemon.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if not target.startswith(("pipe:", "anon_inode:", "/dev/null")):
            daemon_fds.add(target)  # its sockets, its database, its lock file
    assert any(t.startswith("socket:") for t in daemon_fds)
    record = lab.run("inherited_fds")
    assert record.status == "succeeded", record.error
    mine = set(record.output.values())
    assert mine.isdisjoint(daemon_fds), mine & daemon_fds
    assert {record.output.get(n) for n in ("0",)} == {"/dev/null"}  # stdin: nothing to read
    lab.assert_contained()


def test_the_run_socket_cannot_be_moved_or_replaced(lab: Lab) -> None:
    record = lab.run("move_socket")
    assert record.status == "succeeded", record.error
    out = record.output
    codes = ("EROFS", "EBUSY") if lab.tier == "namespace" else ("EACCES",)
    for attack in ("rename", "unlink", "replace"):
        assert _denied(out[attack], *codes), (attack, out[attack])
    assert out["still_works"] == "after"
    lab.assert_contained()
