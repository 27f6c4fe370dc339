"""The seccomp filter of the `namespace` tier, compiled to BPF by libseccomp.

libseccomp (Debian's `libseccomp2`) is used through ctypes rather than a Python binding:
the C library is the well-kept part, it knows every architecture's syscall numbers, and
its x86-64 filters also refuse the x32 and i386 entry points that a hand-written BPF
program would have to remember. The daemon compiles the program once; bubblewrap loads
it (`--seccomp FD`) just before it executes the runner.

Denied calls fail with EPERM, so a script sees an ordinary error rather than a crash.
`clone3` fails with ENOSYS instead: its flags live in memory a filter cannot read, and
ENOSYS makes the C library fall back to `clone`, whose namespace flags are filtered.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

# Syscalls a workflow script has no business making: debugging other processes, kernel
# attack surface (io_uring, bpf, perf, userfaultfd, keyrings) and anything that builds or
# enters namespaces or mounts, which would undo the sandbox from inside.
DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "lookup_dcookie",
    "uselib",
)
NAMESPACE_CLONE_FLAGS = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
TIOCSTI = 0x5412  # push bytes into a terminal's input queue
TIOCLINUX = 0x541C  # can do the same on a virtual console

_ACT_ALLOW = 0x7FFF0000
_CMP_MASKED_EQ = 7


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (  # the layout of struct scmp_arg_cmp
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class SeccompUnavailable(RuntimeError):
    pass


def _library() -> ctypes.CDLL:
    try:
        # By its soname first: find_library runs ldconfig, tens of milliseconds a start.
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        try:
            lib = ctypes.CDLL(
                ctypes.util.find_library("seccomp") or "libseccomp.so", use_errno=True
            )
        except OSError as error:
            raise SeccompUnavailable(f"libseccomp is not installed ({error})") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.cache
def filter_program() -> bytes:
    """The BPF program (struct sock_filter[]) bubblewrap expects on its --seccomp fd."""
    lib = _library()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:

        def rule(action: int, name: str, *conditions: tuple[int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:  # unknown to this libseccomp: nothing to deny
                return
            args = (_ArgCmp * max(len(conditions), 1))()
            for i, (arg, mask, value) in enumerate(conditions):
                args[i] = _ArgCmp(arg, _CMP_MASKED_EQ, mask, value)
            code = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), args)
            if code < 0:
                raise SeccompUnavailable(f"seccomp rule for {name} failed: {os.strerror(-code)}")

        eperm = _act_errno(errno.EPERM)
        for name in DENIED_SYSCALLS:
            rule(eperm, name)
        rule(_act_errno(errno.ENOSYS), "clone3")
        for flag in NAMESPACE_CLONE_FLAGS:
            rule(eperm, "clone", (0, flag, flag))
        # Only the low 32 bits: the kernel ignores the rest (CVE-2019-10063).
        for request in (TIOCSTI, TIOCLINUX):
            rule(eperm, "ioctl", (1, 0xFFFFFFFF, request))
        fd = os.memfd_create("tandem-seccomp")
        try:
            code = lib.seccomp_export_bpf(ctx, fd)
            if code < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed: {os.strerror(-code)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def program_fd() -> int:
    """A pipe holding the program, for one launch; the caller closes it after the spawn."""
    program = filter_program()
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)  # a few hundred bytes: well within a pipe's buffer
    finally:
        os.close(write_fd)
    return read_fd
