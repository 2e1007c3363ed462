"""The sample's first code: trusted, in the sample's own interpreter, before and after the program runs.

Never imported by the harness. The launcher exec()s

    python -I -S -B .../hellora/eval/sandbox/driver.py <workdir>/main.py

with the private result pipe on fd 3 (`protocol.RESULT_FD`) and the per-run nonce readable once on fd 4
(`protocol.NONCE_FD`). The driver reads the nonce into a local and closes fd 4, forbids execve for the rest of the
process's life (a seccomp filter), runs the program, and writes the nonce to fd 3 only if the program returned.

Why this shape: the nonce proves the program ran to the end, so it must not be readable by the program. It is in
no file (main.py holds only the program) and in no code object (it arrived through a pipe), so `__file__` and
`co_consts` show nothing; only introspection of this frame (`sys._getframe().f_back`, `gc`, `ctypes`) would find
it, and the harness flags completions that reach for those (`suspect.py`). Blocking execve stops a program from
re-running itself under other flags (`python -O` drops the asserts) or running any other binary.

Standard library only, and runs outside any package (`-I` keeps its folder off sys.path).
"""

import json
import os
import sys

RESULT_FD, NONCE_FD = 3, 4

# struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}: classic BPF, as seccomp(2) documents it.
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM = 1
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
# machine -> (AUDIT_ARCH_*, execve, execveat, first number of another ABI sharing the arch value, or None)
ARCHES = {
    "x86_64": (0xC000003E, 59, 322, 0x40000000),  # x32 syscalls (bit 30 set) are refused wholesale
    "aarch64": (0xC00000B7, 221, 281, None),
}


def exec_filter(machine):
    """The BPF program for `machine` as (code, jt, jf, k) rows: execve and execveat fail with EPERM, as does every
    syscall made under another ABI; everything else is allowed. None when the machine is not known."""
    if machine not in ARCHES:
        return None
    arch, execve, execveat, foreign = ARCHES[machine]
    deny = (RET_K, 0, 0, RET_ERRNO | EPERM)
    rows = [(LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    rows.append((JEQ_K, 1, 0, arch))  # this ABI: go on; else deny
    rows.append(deny)
    rows.append((LD_W_ABS, 0, 0, 0))  # seccomp_data.nr
    if foreign is not None:
        rows.append((JGE_K, 0, 1, foreign))
        rows.append(deny)
    rows.append((JEQ_K, 1, 0, execve))
    rows.append((JEQ_K, 0, 1, execveat))
    rows.append(deny)
    rows.append((RET_K, 0, 0, RET_ALLOW))
    return rows


def forbid_exec():
    """Install `exec_filter` on this process (inherited by its children); return None or why it is not in force."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    rows = exec_filter(os.uname().machine)
    if rows is None:
        return "no seccomp filter for machine %s" % os.uname().machine
    try:
        import ctypes
    except ImportError as e:
        return "ctypes: %s" % e

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    program = (SockFilter * len(rows))(*[SockFilter(*row) for row in rows])
    fprog = SockFprog(len(rows), program)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return "no_new_privs: %s" % os.strerror(ctypes.get_errno())
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        return "seccomp: %s" % os.strerror(ctypes.get_errno())
    return None


def main():
    try:
        nonce = os.read(NONCE_FD, 64)
        os.close(NONCE_FD)
    except OSError:  # started without the harness's pipe: nothing can count as a pass
        nonce = b""
    problem = forbid_exec()
    report = {"exec_blocked": problem is None, "notes": [] if problem is None else ["execve not blocked: " + problem]}
    os.write(RESULT_FD, ("S " + json.dumps(report) + "\n").encode())
    if problem is not None and "--require-exec-blocked" in sys.argv[2:]:
        os._exit(125)  # the harness reports the sample as an error: it never ran
    path = sys.argv[1]
    with open(path, "rb") as f:
        source = f.read()
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    program = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    exec(compile(source, path, "exec"), program)
    if nonce:
        os.write(RESULT_FD, nonce + b"\n")


if __name__ == "__main__":
    main()
