"""Each plugin as a uid of its own, when the daemon is root.

A plugin process holds secrets (its manifest's), and the host holds more (the model's key,
webhook secrets, every plugin's). Run as the host's uid, a plugin could read them all from
/proc/PID/environ or /proc/PID/mem. So a root host gives each plugin a uid of its own
(allocated like a run's, `tandem.isolation.identity`, and held from the plugin's start to
its stop, standbys and restarts included), and starts its processes through:

- bubblewrap, in a mount namespace of their own that is the host's file system except
  that every folder others cannot enter (the state folder, the socket folder, a private
  home holding the Python runtime) is covered by an empty tmpfs into which only what the
  plugin needs is bound back: the runtime and the SDK (read-only), the plugin's own folder
  (read-only), its data folder and its socket folder. The plugin runs where it always
  did, by the same paths; the rest of the state folder (the run store) does not exist
  there. Network, /proc and /dev stay the host's.
- setpriv, which drops to the plugin's uid with no groups, no capabilities (inheritable
  and bounding sets emptied) and no_new_privs.

Under a different uid, the kernel's own checks do the rest: the host's and the other
plugins' /proc/PID/environ and mem, and their files, are out of reach. A host that is not
root cannot switch uids: its plugins run as its own user, and `reason()` says so (logged at
start, shown by `tandem status`). A host embedded in the CLI (`tandem run` without a daemon)
runs plugins as the user who runs the command, whose own secrets they are.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `reason` stays light for the CLI's first steps
    from tandem.isolation.identity import RunUser

CONFINED = "uid"  # what Health's plugin_isolation says when plugins are confined
EMBEDDED = "a host embedded in the CLI runs plugins as the user who runs it"


@functools.cache
def reason() -> str | None:
    """Why this host's plugins run as its own user (None: each runs as a uid of its own)."""
    if os.geteuid() != 0:
        return "the host is not root, so plugins run as its own user"
    missing = [tool for tool in ("bwrap", "setpriv") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found, so plugins run as root"
    return None


def isolation() -> str:
    """Health's `plugin_isolation`: "uid", or "none: <why>"."""
    why = reason()
    return CONFINED if why is None else f"none: {why}"


@dataclass(frozen=True, eq=False)  # one plugin's: equal only to itself
class PluginSandbox:
    """One plugin's uid and the folders its processes reach; `release` when it stops."""

    user: RunUser
    plugin_folder: Path
    data_dir: Path
    socket_dir: Path

    @classmethod
    def allocate(
        cls, plugin_folder: Path, data_dir: Path, socket_dir: Path
    ) -> PluginSandbox | None:
        """A uid for one plugin, or None where plugins cannot be confined."""
        if reason() is not None:
            return None
        from tandem.isolation import identity

        user = identity.allocate()
        assert user is not None  # root, as reason() checked
        return cls(user, plugin_folder, data_dir, socket_dir)

    def prepare(self) -> None:
        """Blocking: make the plugin's folders its own (the data folder keeps what an
        earlier uid of this plugin wrote in it)."""
        uid, gid = self.user.uid, self.user.gid
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(folder, uid, gid, follow_symlinks=False)
            folder.chmod(0o700)
        for root, dirs, files in os.walk(self.data_dir):
            for name in (*dirs, *files):
                _give(Path(root, name), uid, gid)

    def command(self, argv: list[str], cwd: Path) -> list[str]:
        """`argv` run in the plugin's sandbox, as its uid, from `cwd`."""
        wrapped = [shutil.which("bwrap") or "bwrap", "--bind", "/", "/", "--die-with-parent"]
        for op in self._mounts():
            wrapped += op
        wrapped += ["--chdir", str(cwd), "--"]
        wrapped += [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={self.user.uid}",
            f"--regid={self.user.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            # bubblewrap sets PWD; a plugin's environment is only what launch gives it.
            shutil.which("env") or "env",
            "-u",
            "PWD",
        ]
        return wrapped + argv

    async def release(self) -> None:
        """Once the plugin has stopped: end whatever of its uid is left, free the uid."""
        from tandem.isolation import identity

        if await identity.kill_all(self.user):
            self.user.release()

    def _mounts(self) -> list[list[str]]:
        from tandem.isolation.runtime_paths import runner_runtime

        readonly = [*runner_runtime().folders, self.plugin_folder]
        writable = [self.data_dir, self.socket_dir]
        covered: dict[Path, list[tuple[Path, bool]]] = {}
        for folder, write in [*((f, False) for f in readonly), *((f, True) for f in writable)]:
            hidden_by = _hidden_by(folder)
            if hidden_by is not None:
                covered.setdefault(hidden_by, []).append((folder, write))
        ops: list[list[str]] = []
        for private in sorted(covered, key=lambda p: len(p.parts)):
            ops.append(["--perms", "0711", "--tmpfs", str(private)])
            made = {private}
            for folder, write in covered[private]:
                for parent in reversed(folder.parents):
                    if parent.is_relative_to(private) and parent not in made:
                        ops.append(["--perms", "0711", "--dir", str(parent)])
                        made.add(parent)
                ops.append(["--bind" if write else "--ro-bind", str(folder), str(folder)])
        return ops


def _hidden_by(folder: Path) -> Path | None:
    """The outermost folder above `folder` that others may not enter, if any."""
    for ancestor in reversed(folder.parents):
        try:
            mode = ancestor.stat().st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return ancestor
    return None


def _give(path: Path, uid: int, gid: int) -> None:
    """chown without following links; a file with other hard links is left alone, since
    one might be a file of someone else's that was linked into the folder."""
    info = path.lstat()
    if stat.S_ISDIR(info.st_mode) or info.st_nlink == 1:
        os.chown(path, uid, gid, follow_symlinks=False)
