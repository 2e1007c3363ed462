"""The sandbox launcher: trusted code that runs in the child process, between fork and the sample's interpreter.

Never imported by the harness. `runner.py` starts it by path as

    python -I -S -B .../hellora/eval/sandbox/launcher.py '<json config>'

already in its own session, with rlimits set by preexec_fn, a scrubbed environment and the sample's empty
temp directory as cwd. It builds the namespaces and mounts, drops privileges, reports what it achieved on
the private result pipe ("P <json>" or "E <json>", see `protocol.py`) and then exec()s the sample's
interpreter on the trusted driver (`driver.py`, handed over as `-c` source: the dropped uid need not be able to
read the install), which blocks execve and runs the program: to the end (a plain program, with the nonce on fd 4)
or serving calls from the trusted checker (a HumanEval sample, calls on fd 4, replies on fd 5). Everything here
is best effort except what the config's `require` names.

It runs outside any package, possibly in another interpreter than the harness's (`Sandbox(python=...)`),
and `-I` keeps its own folder off sys.path: standard library only (and its sibling `launcher_os.py`, loaded by
path), never an import from hellora.
"""

import json
import os
import resource
import signal
import sys

TYPE_CHECKING = False  # the type checker reads the imports below; the launcher never loads typing
if TYPE_CHECKING:
    from ctypes import CDLL
    from typing import Any, NoReturn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for the sibling below only (`-I` leaves it off)
from launcher_os import (b, exit_like, holds_no_capabilities, inside, mountinfo,  # noqa: E402,F401
                         reachable_by_others, user_tasks)
from launcher_os import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,  # noqa: E402
                         MS_RDONLY, MS_REC, MS_REMOUNT, NEWIPC, NEWNET, NEWNS, NEWPID, NEWUSER, NEWUTS, OPT_FLAGS,
                         PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, PR_SET_SECUREBITS)

del sys.path[0]

RES = 3  # where the private result pipe ends up (protocol.RESULT_FD); the pipes after it land on 4, 5, ...


class Launcher:
    """One launch: the config from the harness, the protections report `P`, and the steps in order."""

    def __init__(self, cfg: "dict[str, Any]") -> None:
        self.cfg = cfg
        self.work = cfg["workdir"]
        P: "dict[str, Any]" = {name: False for name in cfg["names"]}
        P["new_session"] = os.getsid(0) == os.getpid()
        P["env_scrubbed"] = True
        P["platform"] = sys.platform
        P["notes"] = []
        self.P = P
        self.root = os.geteuid() == 0
        self.uid0, self.gid0 = os.geteuid(), os.getegid()
        self.libc = self.load_libc()
        self.flags = 0  # the CLONE_NEW* flags that unshare() accepted
        self.fds = list(range(RES, RES + len(cfg["fds"])))  # the harness's pipes, moved to 3, 4, ... by main()

    # -- reporting ---------------------------------------------------------------------------------------
    def note(self, msg: str) -> None:
        self.P["notes"].append(msg)

    def send(self, tag: str, obj: object) -> None:
        os.write(RES, (tag + " " + json.dumps(obj) + "\n").encode())

    def fail(self, msg: str) -> "NoReturn":
        try:
            self.send("E", {"error": msg, "protections": self.P})
        finally:
            os._exit(125)

    # -- libc --------------------------------------------------------------------------------------------
    def load_libc(self) -> "CDLL | None":
        libc = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                libc.unshare.argtypes = [ctypes.c_int]
                libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                       ctypes.c_char_p]
                libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
                libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
            except (OSError, AttributeError, ImportError) as e:
                libc = None
                self.note("no namespaces: libc not usable (%s)" % e)
        else:
            self.note("no namespaces: not Linux")
        if not self.cfg["namespaces"]:
            self.note("namespaces disabled by the caller")
        return libc

    @staticmethod
    def errno() -> int:
        import ctypes  # only called once load_libc() imported it

        return ctypes.get_errno()

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            e = self.errno()
            raise OSError(e, "%s: %s" % (what, os.strerror(e)))

    def mount(self, src: "str | None", target: str, fstype: "str | None", flags: int, data: "str | None" = None) -> None:
        self.check(self.libc.mount(b(src), b(target), b(fstype), flags, b(data)), "mount " + target)  # type: ignore[union-attr]  # reached only with libc

    # -- namespaces --------------------------------------------------------------------------------------
    def unshare(self) -> None:
        """New mount, net, pid, IPC and UTS namespaces (else at least net), plus a user namespace when not root
        -- root needs none, and drops to a plain uid instead."""
        P = self.P
        if self.libc is not None and self.cfg["namespaces"]:
            extra = 0 if self.root else NEWUSER
            for want in (NEWNS | NEWNET | NEWPID | NEWIPC | NEWUTS | extra, NEWNET | extra):
                if self.libc.unshare(want) == 0:
                    self.flags = want
                    break
                self.note("unshare(0x%x) failed: %s" % (want, os.strerror(self.errno())))
        if self.flags & NEWUSER:
            try:
                with open("/proc/self/setgroups", "w") as f:
                    f.write("deny")
                with open("/proc/self/uid_map", "w") as f:
                    f.write("0 %d 1" % self.uid0)
                with open("/proc/self/gid_map", "w") as f:
                    f.write("0 %d 1" % self.gid0)
            except OSError as e:
                self.note("user namespace id map: %s" % e)
        P["user_namespace"] = bool(self.flags & NEWUSER)
        P["net_namespace"] = bool(self.flags & NEWNET)
        P["mount_namespace"] = bool(self.flags & NEWNS)
        P["ipc_namespace"] = bool(self.flags & NEWIPC)
        P["pid_namespace"] = bool(self.flags & NEWPID)

    def enter_pid_namespace(self) -> int:
        """Fork into the new pid namespace; return the write end of the pipe for the sample's wait status.

        Only children enter a new pid namespace, so fork: the child becomes its init (pid 1). The sample must
        not be pid 1 itself -- the kernel drops default-action signals to an init (SIGXFSZ, SIGXCPU, a
        self-sent SIGTERM ...), which would change how programs behave -- so init stays this trusted code,
        forks the sample as pid 2, reaps, and reports the sample's wait status on a private pipe. When init
        exits, the kernel SIGKILLs everything left in the namespace, detached or not.
        """
        status_r, status_w = os.pipe()
        init = os.fork()
        if init:  # the supervisor, outside the namespace: relay the sample's fate to the harness
            os.close(status_w)
            for fd in [0, 1, 2] + self.fds:
                os.close(fd)
            while True:
                try:
                    _, status = os.waitpid(init, 0)
                    break
                except InterruptedError:
                    continue
            reported = os.read(status_r, 32).strip()
            exit_like(int(reported) if reported.isdigit() else status)
        os.close(status_r)
        # If the supervisor dies (e.g. the harness SIGKILLs the session), the namespace dies with it.
        self.libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # type: ignore[union-attr]  # reached only with libc
        return status_w

    def run_as_init(self, status_w: int) -> None:
        """Fork the sample (pid 2); this process, init, keeps root/capabilities (so the sample cannot touch
        it) and reaps until the sample exits, then reports its wait status and exits."""
        sample = os.fork()
        if sample:
            for fd in [0, 1, 2] + self.fds:
                os.close(fd)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_IGN)
            while True:
                try:
                    pid, status = os.wait()
                except InterruptedError:
                    continue
                except ChildProcessError:
                    os._exit(1)
                if pid == sample:
                    os.write(status_w, str(status).encode())
                    os._exit(0)
        os.close(status_w)

    # -- filesystem --------------------------------------------------------------------------------------
    def setup_mounts(self) -> None:
        """A private /proc, the whole filesystem read-only except the work dir, home folders under tmpfs."""
        P, work = self.P, self.work
        os.umask(0o022)
        try:
            # Without this, mounts below could propagate back to the host's mount namespace: never go on.
            self.mount(None, "/", None, MS_REC | MS_PRIVATE)
        except OSError as e:
            self.note("mounts skipped, cannot make / private: %s" % e)
            return
        if self.flags & NEWPID:
            try:
                self.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                P["private_proc"] = True
            except OSError as e:
                self.note("private /proc: %s" % e)
        try:
            self.mount(work, work, None, MS_BIND | MS_REC)  # its own mount: stays writable below
            hidden = self.hide_homes()
            P["hidden_home"] = len(hidden) == len(self.cfg["hide"])
            P["hidden_paths"] = hidden
            P["hidden_files"] = self.hide_files()
            failed = []
            for mp, opts in mountinfo():
                if inside(mp, work):
                    continue
                fl = MS_REMOUNT | MS_BIND | MS_RDONLY
                for o in opts:
                    fl |= OPT_FLAGS.get(o, 0)
                try:
                    self.mount(None, mp, None, fl)
                except OSError as e:
                    if e.errno != 2:  # ENOENT: under a hidden folder, unreachable anyway
                        failed.append(str(e))
            P["readonly_fs"] = not failed
            if failed:
                self.note("read-only remount failed for %d mounts: %s" % (len(failed), "; ".join(failed[:5])))
            self.mount(None, work, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
        except OSError as e:
            self.note("mount setup: %s" % e)

    def hide_homes(self) -> "list[str]":
        """Cover each `hide` folder with an empty tmpfs, re-exposing the interpreter's folders (`keep`) that
        live inside it; return the folders hidden."""
        work = self.work
        hidden = []
        for i, top in enumerate(self.cfg["hide"]):
            keeps = [k for k in self.cfg["keep"] if inside(k, top)]
            if top in keeps:
                self.note("not hiding %s: the interpreter lives there" % top)
                continue
            try:
                staged = []
                for j, keep in enumerate(keeps):  # e.g. a pyenv python under /root stays reachable
                    st = os.path.join(work, ".hellora-keep-%d-%d" % (i, j))
                    os.mkdir(st, 0o700)
                    self.mount(keep, st, None, MS_BIND | MS_REC)
                    staged.append((keep, st))
                self.mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
                for keep, st in staged:
                    os.makedirs(keep, 0o755, exist_ok=True)
                    self.mount(st, keep, None, MS_BIND | MS_REC)
                    self.check(self.libc.umount2(b(st), MNT_DETACH), "umount " + st)  # type: ignore[union-attr]  # reached only with libc
                    os.rmdir(st)
                hidden.append(top)
            except OSError as e:
                self.note("hiding %s: %s" % (top, e))
        return hidden

    def hide_files(self) -> int:
        """Cover each `hide_files` file (the benchmark's problems file: its tests hold the answers) with /dev/null;
        return how many are covered."""
        done = 0
        for path in self.cfg.get("hide_files", []):
            try:
                self.mount("/dev/null", path, None, MS_BIND)
                done += 1
            except OSError as e:
                self.note("hiding %s: %s" % (path, e))
        return done

    # -- privileges (in the sample's process only) -------------------------------------------------------
    def drop_capabilities(self) -> None:
        """No capabilities survive exec."""
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                last_cap = int(f.read())
            for cap in range(last_cap + 1):
                self.check(self.libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "PR_CAPBSET_DROP")  # type: ignore[union-attr]  # reached only with libc
            if self.flags & NEWUSER:  # SECBIT_NOROOT | SECBIT_NOROOT_LOCKED: ns-root gets no caps on exec
                self.check(self.libc.prctl(PR_SET_SECUREBITS, 3, 0, 0, 0), "PR_SET_SECUREBITS")  # type: ignore[union-attr]  # reached only with libc
            self.P["capabilities_dropped"] = True
        except (OSError, ValueError) as e:
            self.note("capabilities: %s" % e)

    def drop_uid(self) -> None:
        """As root, switch to the plain uid unique to this harness process and worker slot."""
        cfg, P = self.cfg, self.P
        if self.root and cfg["uid"] is not None and not all(
            reachable_by_others(k) for k in cfg["keep"] + [cfg["python"]]
        ):
            self.note("uid not dropped: the interpreter %s is not reachable by an unprivileged uid (private home "
                      "folder and no mount namespace to expose it)" % cfg["python"])
        elif self.root and cfg["uid"] is not None:
            for uid in (cfg["uid"], cfg["fallback_uid"]):
                try:
                    os.chown(self.work, uid, uid)
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                    break
                except OSError as e:
                    self.note("setuid(%d): %s" % (uid, e))
            P["uid_dropped"] = os.getresuid() == (uid, uid, uid) and uid != 0
            if P["uid_dropped"]:
                P["capabilities_dropped"] = True  # a non-root uid keeps no capabilities across exec
        elif not self.root:
            self.note("not root: the sample runs as the harness's own uid%s"
                      % (" (mapped to root inside its user namespace, with no capabilities)"
                         if self.flags & NEWUSER else ""))
            if not self.flags & NEWUSER and holds_no_capabilities():
                P["capabilities_dropped"] = True  # none to drop (PR_CAPBSET_DROP itself needs one, so it failed)
        P["uid"] = os.getuid() if self.root else self.uid0

    def set_no_new_privs(self) -> None:
        """No setuid binary or file capability gains anything after exec."""
        self.P["no_new_privs"] = self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0  # type: ignore[union-attr]  # reached only with libc
        if not self.P["no_new_privs"]:
            self.note("no_new_privs: %s" % os.strerror(self.errno()))

    # -- limits ------------------------------------------------------------------------------------------
    def limit_processes(self) -> None:
        """RLIMIT_NPROC is per user. As root the harness set it in preexec_fn (it binds once we are a plain
        uid). Otherwise set it here: inside a user namespace it counts only this sample; without one, only
        as a ceiling above what the user already runs."""
        if self.root or not hasattr(resource, "RLIMIT_NPROC"):
            return
        n = self.cfg["nproc"]
        if not self.flags & NEWUSER:
            try:
                n += user_tasks(self.uid0)
            except OSError:
                n = None
                self.note("RLIMIT_NPROC not set: cannot list /proc")
        if n is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
            except (ValueError, OSError) as e:
                self.note("RLIMIT_NPROC: %s" % e)

    def read_back_rlimits(self) -> None:
        """Report the limits actually in force: preexec_fn cannot report a setrlimit it failed."""
        rlimits = self.cfg["rlimits"]
        got: "dict[str, Any]" = {}  # name -> [soft, hard], or None where the platform lacks the limit
        for name, _ in list(rlimits.items()) + [("RLIMIT_NPROC", None)]:
            lim = getattr(resource, name, None)
            got[name] = list(resource.getrlimit(lim)) if lim is not None else None
        self.P["rlimit_values"] = got
        self.P["rlimits"] = all(got.get(name) is not None and 0 <= got[name][1] <= want
                                for name, want in rlimits.items() if name != "RLIMIT_NPROC" or self.root)

    # -- the whole launch --------------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.cfg
        self.unshare()
        status_w = self.enter_pid_namespace() if self.flags & NEWPID else None
        if self.flags & NEWNS:
            self.setup_mounts()
        if status_w is not None:
            self.run_as_init(status_w)
        if self.libc is not None:
            self.drop_capabilities()
        self.drop_uid()
        if self.libc is not None:
            self.set_no_new_privs()
        self.limit_processes()
        self.read_back_rlimits()
        os.umask(0o077)
        try:
            os.chdir(self.work)  # re-enter through the new bind mount (the old cwd now sits on the read-only one)
        except OSError as e:
            self.fail("the sample cannot enter its directory %s (%s): put tmp_root somewhere an unprivileged uid "
                      "can reach" % (self.work, e))
        missing = [name for name in cfg["require"] if not self.P.get(name) and name != "exec_blocked"]
        if missing:
            self.fail("required sandbox protections not active: %s (%s)" % (", ".join(missing),
                                                                            "; ".join(self.P["notes"])))
        self.send("P", self.P)
        try:
            strict = ["--require-exec-blocked"] if "exec_blocked" in cfg["require"] else []  # the driver checks it
            # The driver arrives as source on the command line (-c), never as a path: the dropped uid may not be
            # able to read the install folder (a mode-700 clone), and home folders are hidden by now.
            os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", "-c", cfg["driver_source"], cfg["program"]]
                      + cfg["driver_args"] + strict, cfg["env"])
        except OSError as e:
            self.fail("cannot start the sample's interpreter %s: %s" % (cfg["python"], e))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    import fcntl

    # parked above every target first, whatever numbers the pipes arrived on, then moved to 3, 4, ...
    top = RES + len(cfg["fds"])
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, top) for fd in cfg["fds"]]
    for fd in cfg["fds"]:
        os.close(fd)
    for target, fd in enumerate(parked, start=RES):
        os.dup2(fd, target)
        os.close(fd)
    Launcher(cfg).run()


if __name__ == "__main__":
    main()
