"""What this machine can do for isolation: asked at daemon start and by
`tandem check --sandbox`. Each tier is available or not, with the reason in words."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from .cgroups import CgroupUnavailable, RunCgroups
from .identity import daemon_is_root
from .runtime_paths import runner_runtime, unreadable_by_others
from .seccomp import SeccompUnavailable, filter_program


@dataclass
class TierSupport:
    name: str
    available: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class SandboxReport:
    root: bool
    tiers: dict[str, TierSupport]
    run_limits: str = ""  # what holds memory_mb: a cgroup per run, or each process alone

    def lines(self) -> list[str]:
        who = "root: runs get a uid of their own" if self.root else "not root: runs share its uid"
        out = [f"daemon user: {who}", f"run limits: {self.run_limits}"]
        for tier in self.tiers.values():
            out.append(f"{tier.name:<10} {'available' if tier.available else 'unavailable'}")
            out.extend(f"    {note}" for note in tier.notes)
        return out


def probe(*, process: bool = True, namespace: bool = True) -> SandboxReport:
    tiers = {}
    if process:
        tiers["process"] = _process_tier()
    if namespace:
        tiers["namespace"] = _namespace_tier()
    groups, note = run_limits()
    if groups is not None:
        groups.close()  # only asked: the host makes its own
    return SandboxReport(daemon_is_root(), tiers, note)


def run_limits() -> tuple[RunCgroups | None, str]:
    """The cgroup for a host's runs, and what holds `memory_mb`, in words."""
    try:
        groups = RunCgroups.open()
    except (OSError, CgroupUnavailable) as error:
        return None, f"memory_mb holds per process only (RLIMIT_AS), no cgroup: {error}"
    return groups, f"memory_mb holds for each run as a whole: {groups.describe()}"


def _process_tier() -> TierSupport:
    support = TierSupport("process", True)
    if shutil.which("setpriv") is None:
        support.notes.append("setpriv (util-linux) is missing: no uid switch, no no_new_privs")
        support.available = not daemon_is_root()
    if daemon_is_root():
        problems = unreadable_by_others(runner_runtime())
        if problems:
            support.available = False
            support.notes.append(
                "the daemon is root, so runs use an unprivileged uid, which cannot read "
                "the Python runtime: " + "; ".join(problems)
            )
    else:
        support.notes.append(
            "runs share the daemon's uid: they can signal and read each other and the daemon"
        )
    return support


def _namespace_tier() -> TierSupport:
    support = TierSupport("namespace", False)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        support.notes.append("bubblewrap (bwrap) is not installed: `make install` adds it")
        return support
    try:
        filter_program()
    except SeccompUnavailable as error:
        support.notes.append(f"no seccomp filter: {error}")
        return support
    if daemon_is_root() and shutil.which("setpriv") is None:
        support.notes.append("setpriv (util-linux) is missing: cannot drop root in the sandbox")
        return support
    # The kernel has the last word: try the same namespaces a run gets.
    user_ns = [] if daemon_is_root() else ["--unshare-user"]
    command = [bwrap, *user_ns, "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    command += ["--ro-bind", "/", "/", "--proc", "/proc", "--die-with-parent", "true"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, env={})
    except (OSError, subprocess.TimeoutExpired) as error:
        support.notes.append(f"bubblewrap failed to start: {error}")
        return support
    if result.returncode != 0:
        reason = result.stderr.strip() or f"exit status {result.returncode}"
        support.notes.append(f"the kernel refuses the namespaces: {reason}")
        return support
    support.available = True
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, env={})
    support.notes.append(f"{version.stdout.strip()} at {bwrap}, seccomp via libseccomp")
    if not daemon_is_root():
        support.notes.append(f"unprivileged user namespaces (uid {os.getuid()} inside)")
    return support
