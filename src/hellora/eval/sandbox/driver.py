"""The sample's first code: trusted, in the sample's own interpreter, before and after the program runs.

Never imported by the harness. The launcher exec()s it as source, with `plain_data.py` loaded first (`sources.py`):

    python -I -S -B -c <bootstrap + this file> <workdir>/main.py [--serve ENTRY_POINT] [--require-exec-blocked]

with the private result pipe on fd 3 (`protocol.RESULT_FD`). It forbids execve for the rest of the process's life
(a seccomp filter), reports whether that worked ("S <json>" on fd 3), then either

* serves (`--serve`, HumanEval): runs main.py, which holds the prompt and the completion and *no tests*, then
  answers calls to ENTRY_POINT read from fd 4 (`protocol.CALLS_FD`) on fd 5 (`protocol.REPLIES_FD`), one JSON line
  each way, values as plain data (`plain_data.py`). The trusted checker on the other end holds the tests and
  decides; nothing this process does can change a verdict except the plain values it sends back; or
* runs a plain program to the end and then writes the nonce read once from fd 4 to fd 3 (a generic program run:
  proof that it did not exit early, which a program able to read this frame's memory can forge; never used for
  scores).

Why source and not a path: the sample runs under a dropped uid that may not be able to read the install folder
(a clone in a mode-700 folder), and home folders are hidden from it. Blocking execve stops a program from running
any other binary. Standard library only, and runs outside any package (`-I -S`).
"""

import json
import os
import sys

TYPE_CHECKING = False  # the type checker reads the import below; the sandbox never loads typing
if TYPE_CHECKING:
    from typing import Any, Callable

try:
    import plain_data  # put in sys.modules by the bootstrap
except ImportError:  # imported as a module by the tests
    from hellora.eval.sandbox import plain_data

RESULT_FD, NONCE_FD = 3, 4
CALLS_FD, REPLIES_FD = 4, 5  # in --serve mode

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


def exec_filter(machine: str) -> "list[tuple[int, int, int, int]] | None":
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


def forbid_exec() -> "str | None":
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


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def answer(function: "Callable[..., object] | None", entry: str, message: "dict[str, Any]") -> "dict[str, Any]":
    """The reply to one call: the return value as plain data, the exception it raised, or why it cannot answer."""
    try:
        args = plain_data.from_wire(message["args"])
        kwargs = plain_data.from_wire(message["kwargs"])
    except (KeyError, TypeError, ValueError) as e:
        return {"bad_call": str(e)[:200]}
    if function is None:
        return {"raised": "NameError", "message": "the program defines no callable %s" % entry}
    try:
        value = function(*args, **kwargs)
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: the checker decides what they mean
        try:
            import traceback

            traceback.print_exc()  # for the sample's log (stderr), as an in-process run would show it
            sys.stderr.flush()
        except BaseException:
            pass
        return {"raised": type(e).__name__, "message": str(e)[:1000]}
    try:
        return {"ok": plain_data.to_wire(value)}
    except plain_data.NotPlainData as e:
        return {"not_plain": e.type_name, "looks_forged": e.looks_forged}
    except BaseException as e:  # a hostile value may raise anything while it is walked
        return {"not_plain": "%s while encoding" % type(e).__name__, "looks_forged": True}


def serve(program: "dict[str, object]", entry: str) -> None:
    """Answer the checker's calls until it closes the call pipe."""
    function = program.get(entry)
    function = function if callable(function) else None
    calls = os.fdopen(CALLS_FD, "rb")
    for line in calls:
        try:
            message = plain_data.loads(line)
        except ValueError as e:
            reply = {"bad_call": str(e)[:200]}
        else:
            reply = answer(function, entry, message)
        for stream in (sys.stdout, sys.stderr):  # the harness kills this process once the checker has decided
            try:
                stream.flush()
            except BaseException:
                pass
        write_all(REPLIES_FD, plain_data.dumps(reply))


def main() -> None:
    serving = sys.argv[2:3] == ["--serve"]
    entry = sys.argv[3] if serving and len(sys.argv) > 3 else ""
    nonce = b""
    if not serving:
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
    if serving:
        serve(program, entry)
    elif nonce:
        os.write(RESULT_FD, nonce + b"\n")


if __name__ == "__main__":
    main()
