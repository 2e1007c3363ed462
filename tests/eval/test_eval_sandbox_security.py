"""Hostile completions through the real sandbox.

Every attack is a HumanEval-style sample for a toy problem (`add`). The attack is written so that the
sample would *pass* if the attack succeeded (e.g. it returns the right answer only after deleting the
canary), so a broken sandbox makes these tests fail. Each test runs the hostile sample and then a normal
good sample in the same batch, one after the other, and checks: scored as not passed, side effects absent,
no process of the sample left anywhere in /proc, and the good sample still passes afterwards.

Where a protection does not exist on the platform (e.g. no network namespace), the test that needs it is
skipped with the reason, never silently passed; see docs/sandbox.md for what holds where.
"""

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hellora.eval.humaneval import build_checked_sample, build_program
from hellora.eval.sandbox import PROTECTION_NAMES, Sandbox, SandboxLimits
from hellora.eval.sandbox.runner import _check_platform
from hellora.utils.errors import HelloraError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox refuses to run on non-POSIX systems")

ADD = {
    "task_id": "toy/add",
    "prompt": "def add(a, b):\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
def sample(problem, completion):
    """A HumanEval sample as hellora scores it: the completion in the sandbox, the tests in the trusted checker."""
    return build_checked_sample(problem, completion)


GOOD = sample(ADD, ADD["canonical_solution"])


def in_function(code: str) -> str:
    """Completion whose attack runs inside add() (i.e. when the tests call it)."""
    return textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")


def at_module_level(code: str, returns: str = "None") -> str:
    """Completion that closes add() (returning `returns`) and then runs `code` at module level, i.e. after
    the function is defined but *before* the tests are defined and run."""
    return f"    return {returns}\n\n" + textwrap.dedent(code).strip("\n") + "\n"


def processes_with(text: str) -> list[int]:
    """pids whose command line contains `text` (a sample's temp dir or a unique marker)."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def protections():
    return Sandbox().probe()


def need(protections, *names):
    missing = [n for n in names if not protections.get(n)]
    if missing:
        pytest.skip(f"sandbox protection(s) not available on this machine: {missing} (see docs/sandbox.md)")


@pytest.fixture
def open_dir():
    """A world-readable folder outside the sandbox (like a project checkout): visible, must stay unharmed.
    (pytest's tmp_path is mode 0700, which would hide it from an unprivileged sample for free.)"""
    d = tempfile.mkdtemp(prefix="hellora-test-open-")
    os.chmod(d, 0o755)
    yield Path(d)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def make_canary(folder: Path) -> dict[Path, bytes]:
    folder.mkdir(mode=0o755)
    files = {folder / "keep.txt": b"canary " + secrets.token_bytes(8).hex().encode(), folder / "sub" / "x": b"x"}
    for path, data in files.items():
        path.parent.mkdir(mode=0o755, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    return files


def run_then_good(completion: str, *, timeout: float = 5.0, sandbox: Sandbox | None = None, **limit_kw):
    """Run the hostile sample, then a good one, sequentially in one batch; check the shared invariants."""
    sb = sandbox or Sandbox(SandboxLimits(timeout=timeout, **limit_kw))
    hostile, good = sb.run_many([sample(ADD, completion), GOOD], workers=1, progress=False)
    assert not hostile.passed, (hostile.status, hostile.stdout[-500:], hostile.stderr[-500:])
    assert hostile.status in ("failed", "timeout"), (hostile.status, hostile.error)
    assert hostile.leftovers_surviving == 0
    assert processes_with(hostile.workdir) == [], "a process of the hostile sample survived"
    assert good.passed, (good.status, good.stderr[-500:], good.error)
    assert not os.path.exists(hostile.workdir)
    return hostile


# --------------------------------------------------------------------------------------------------------
# Sanity: the harness itself
# --------------------------------------------------------------------------------------------------------


def test_good_and_wrong_samples_are_told_apart():
    sb = Sandbox(SandboxLimits(timeout=5))
    good, wrong = sb.run_many([GOOD, sample(ADD, "    return a - b\n")], workers=2, progress=False)
    assert good.passed and good.status == "passed"
    assert not wrong.passed and wrong.status == "failed" and wrong.summary() == "failed: AssertionError"
    # The generic single-process layout still runs (a plain program: exit 0 and ran to its end)
    plain_good, plain_wrong = sb.run_many([build_program(ADD, "    return a + b\n"),
                                           build_program(ADD, "    return a - b\n")], workers=2, progress=False)
    assert plain_good.passed and plain_good.exit_code == 0
    assert not plain_wrong.passed and "AssertionError" in plain_wrong.stderr


def test_windows_and_unknown_platforms_are_refused():
    with pytest.raises(HelloraError, match="not supported"):
        _check_platform("nt")


def test_zero_cpu_seconds_is_refused():
    with pytest.raises(HelloraError, match="cpu_seconds"):
        SandboxLimits(cpu_seconds=0)


def test_a_failure_before_launch_leaves_no_temp_dir(tmp_path, monkeypatch):
    import hellora.eval.sandbox.runner as runner

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "write_program", broken)
    with pytest.raises(OSError, match="disk full"):
        Sandbox(tmp_root=str(tmp_path)).run(GOOD)
    assert list(tmp_path.iterdir()) == []


def test_unknown_required_protection_is_an_error():
    with pytest.raises(HelloraError, match="unknown sandbox protection"):
        Sandbox(require=("magic",))


def test_required_protection_missing_means_the_sample_never_runs(open_dir):
    flag = open_dir / "ran"
    os.chmod(open_dir, 0o777)  # writable even for a dropped uid, so only "never ran" keeps it absent
    sb = Sandbox(SandboxLimits(timeout=5), namespaces=False, require=("net_namespace",))
    res = sb.run(f"open({str(flag)!r}, 'w').write('x')\n")
    assert res.status == "error" and not res.passed
    assert "net_namespace" in res.error
    assert not flag.exists()


def test_protections_are_reported(protections):
    for name in PROTECTION_NAMES:
        assert isinstance(protections[name], bool), name
    assert protections["new_session"] and protections["env_scrubbed"] and protections["rlimits"]
    values = protections["rlimit_values"]
    assert values["RLIMIT_CORE"] == [0, 0]
    assert values["RLIMIT_AS"][1] == SandboxLimits().memory_bytes
    if os.geteuid() == 0:  # default policy: model code never runs as root
        assert protections["uid_dropped"] and protections["uid"] != 0


# --------------------------------------------------------------------------------------------------------
# Attacks, one per test
# --------------------------------------------------------------------------------------------------------


def test_fork_bomb(protections):
    completion = at_module_level(
        """
        import os
        made = refused = 0
        for _ in range(200):
            try:
                if os.fork() == 0:
                    while True:  # every child keeps forking too
                        try:
                            os.fork()
                        except OSError:
                            pass
                made += 1
            except OSError:
                refused += 1
        print("made", made, "refused", refused, flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """
    )
    start = time.monotonic()
    res = run_then_good(completion, timeout=3, max_processes=16)
    assert res.status == "timeout"
    assert time.monotonic() - start < 15
    refused = int(res.stdout.split("refused")[1].split()[0])
    assert refused > 0, "the process limit never stopped the fork bomb"


def test_infinite_loop():
    res = run_then_good(in_function("while True:\n    pass"), timeout=2)
    assert res.status == "timeout" and res.exit_code == -signal.SIGKILL
    assert 2 <= res.duration < 5


def test_memory_hog():
    completion = in_function(
        """
        chunks = []
        try:
            while True:
                chunks.append(bytearray(64 << 20))
        except MemoryError:
            print("MemoryError after", len(chunks) * 64, "MiB", flush=True)
            raise
        """
    )
    res = run_then_good(completion, timeout=20, memory_bytes=512 << 20)
    assert res.status == "failed"
    got = int(res.stdout.split("MemoryError after")[1].split()[0])
    assert got <= 512


def test_rm_rf_canary_outside_the_temp_dir(open_dir, tmp_path):
    visible = make_canary(open_dir / "canary")
    hidden = make_canary(tmp_path / "canary")
    completion = in_function(
        f"""
        import os, shutil
        print("visible:", sorted(os.listdir({str(open_dir / 'canary')!r})), flush=True)
        for target in ({str(open_dir / 'canary')!r}, {str(tmp_path / 'canary')!r}):
            shutil.rmtree(target, ignore_errors=True)
        os.system("rm -rf " + {str(open_dir / 'canary')!r} + " " + {str(tmp_path / 'canary')!r})
        # (the tmp_path canary sits in a 0700 folder: invisible to an unprivileged sample, so only the
        # visible one can tell the sample whether it succeeded; the test checks both from outside)
        if not os.path.exists({str(open_dir / 'canary')!r}):
            return a + b
        shutil.rmtree({str(open_dir / 'canary')!r})  # raise the error for the log
        """
    )
    res = run_then_good(completion)
    assert "visible: ['keep.txt', 'sub']" in res.stdout  # it could see the canary, and still not harm it
    assert "Read-only file system" in res.stderr or "Permission denied" in res.stderr
    for files in (visible, hidden):
        for path, data in files.items():
            assert path.read_bytes() == data


def test_write_outside_the_temp_dir(open_dir, tmp_path):
    token = secrets.token_hex(6)
    targets = [
        open_dir / f"escape-{token}.txt",
        tmp_path / f"escape-{token}.txt",
        Path(tempfile.gettempdir()) / f"hellora-escape-{token}.txt",
        Path("/dev/shm") / f"hellora-escape-{token}",
    ]
    os.chmod(open_dir, 0o777)  # even a world-writable folder outside the sandbox must stay untouched
    completion = in_function(
        f"""
        import os
        with open("inside.txt", "w") as f:  # its own temp dir is writable
            f.write("ok")
        print("inside ok", os.path.exists(os.path.join(os.environ["HOME"], "inside.txt")), flush=True)
        wrote = []
        for target in {[str(t) for t in targets]!r}:
            try:
                with open(target, "w") as f:
                    f.write("escaped")
                wrote.append(target)
            except OSError as e:
                print("blocked", target, e.strerror, flush=True)
        if wrote:
            return a + b
        """
    )
    try:
        res = run_then_good(completion)
    finally:
        escaped = [t for t in targets if t.exists()]
        for t in escaped:
            t.unlink()
    assert escaped == []
    assert "inside ok True" in res.stdout
    assert res.stdout.count("blocked") == len(targets)


@pytest.fixture
def loopback_server():
    """A TCP server on 127.0.0.1 (loopback only) that records every connection it accepts."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except (socket.timeout, OSError):
                continue
            accepted.append(addr)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join(2)
    srv.close()


def test_network_to_a_listening_loopback_server(protections, loopback_server):
    need(protections, "net_namespace")
    port, accepted = loopback_server
    # control: the server really accepts connections from outside the sandbox
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 1
    completion = in_function(
        f"""
        import socket
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
            s.sendall(b"leak")
            return a + b
        except OSError as e:
            print("connect failed:", type(e).__name__, e, flush=True)
        """
    )
    res = run_then_good(completion)
    assert "connect failed" in res.stdout
    time.sleep(0.3)
    assert len(accepted) == 1, "the sandbox reached the host's loopback server"


def test_network_to_a_closed_loopback_port(protections):
    need(protections, "net_namespace")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # now (almost certainly) nothing listens there: the host would answer "refused"
    completion = in_function(
        f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
        except ConnectionRefusedError:
            return a + b  # "refused" means the host's network stack answered us
        except OSError as e:
            print("error:", e, flush=True)
        """
    )
    res = run_then_good(completion)
    assert "error:" in res.stdout and "refused" not in res.stdout.lower()


@pytest.fixture
def process_with_secret_env():
    """Another process of ours whose exec-time environment holds a secret (as a harness started with an API
    token would): /proc/<pid>/environ shows it to anyone allowed to look -- but must not to the sample."""
    import subprocess

    secret = "hellora-fake-secret-" + secrets.token_hex(8)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, "HELLORA_FAKE_SECRET": secret}
    )
    try:
        if os.path.isdir("/proc"):  # control: the secret really is visible from outside the sandbox
            deadline = time.monotonic() + 5
            while secret.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes():
                assert time.monotonic() < deadline
                time.sleep(0.01)
        yield secret
    finally:
        proc.kill()
        proc.wait()


def test_env_secrets_are_not_visible(monkeypatch, process_with_secret_env):
    secret = process_with_secret_env
    monkeypatch.setenv("HELLORA_FAKE_SECRET", secret)  # and in the harness's own environment
    completion = in_function(
        f"""
        import os
        print("ENV", sorted(os.environ), flush=True)
        print("HOME", os.environ.get("HOME"), flush=True)
        needle = ("HELLORA_FAKE_SECRET=" + {secret!r}).encode()
        found = any(needle in (k + "=" + v).encode() for k, v in os.environ.items())
        for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if pid.isdigit():
                try:
                    with open("/proc/" + pid + "/environ", "rb") as f:
                        found = found or needle in f.read()
                except OSError:
                    pass
        print("FOUND", found, flush=True)
        if found:
            return a + b
        """
    )
    res = run_then_good(completion)
    assert "FOUND False" in res.stdout
    env_line = next(line for line in res.stdout.splitlines() if line.startswith("ENV "))
    keys = set(eval(env_line[4:]))  # a list literal printed by the sample  # noqa: S307
    assert keys <= {"PATH", "LANG", "HOME", "TMPDIR", "HELLORA_SANDBOX", "LC_CTYPE"}
    assert f"HOME {res.workdir}" in res.stdout
    assert res.workdir != os.path.expanduser("~")


def test_home_folder_files_are_not_readable(protections, open_dir, monkeypatch):
    fake_home = open_dir / "home"
    fake_home.mkdir(mode=0o755)
    secret = "hellora-home-secret-" + secrets.token_hex(8)
    (fake_home / ".netrc").write_text(secret)
    (fake_home / ".netrc").chmod(0o644)  # readable by anyone, so only hiding the home can protect it
    monkeypatch.setenv("HOME", str(fake_home))
    completion = in_function(
        f"""
        import os
        print("HOME is", os.environ["HOME"], flush=True)
        for path in ({str(fake_home / '.netrc')!r}, "/root/.netrc", "/root/.bash_history"):
            try:
                with open(path) as f:
                    print("READ", path, f.read(), flush=True)
                    return a + b
            except OSError as e:
                print("cannot read", path, e.strerror, flush=True)
        """
    )
    res = run_then_good(completion)
    assert secret not in res.stdout + res.stderr
    assert f"HOME is {res.workdir}" in res.stdout
    assert "READ" not in res.stdout
    if protections.get("hidden_home"):
        # The planted file is world-readable: only the empty tmpfs over the home folder hides it.
        assert "No such file or directory" in res.stdout


def test_killing_the_parent(protections):
    if not (protections.get("pid_namespace") or protections.get("uid_dropped")):
        pytest.skip("without a pid namespace or a dropped uid the sample could kill the test runner itself")
    harness = os.getpid()
    completion = at_module_level(
        f"""
        import os, signal
        attacks = [
            ("harness", lambda: os.kill({harness}, signal.SIGKILL)),
            ("everything", lambda: os.kill(-1, signal.SIGKILL)),
            ("parent", lambda: os.kill(os.getppid(), signal.SIGKILL)),
            ("parent group", lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)),
        ]
        for name, attack in attacks:
            try:
                attack()
                print(name, "sent", flush=True)
            except OSError as e:
                print(name, type(e).__name__, flush=True)
        """
    )
    res = run_then_good(completion)
    os.kill(harness, 0)  # we are still here
    assert "harness" in res.stdout and "harness sent" not in res.stdout


def test_sigterm_ignored_still_killed():
    completion = in_function(
        """
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):
            signal.signal(sig, signal.SIG_IGN)
        print("ignoring signals", flush=True)
        while True:
            pass
        """
    )
    res = run_then_good(completion, timeout=2)
    assert "ignoring signals" in res.stdout
    assert res.status == "timeout" and res.exit_code == -signal.SIGKILL
    assert res.duration < 5


DETACHED = """
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.environ["HELLORA_TEST_MARKER"] = MARKER  # (execve is blocked: the grandchild stays this interpreter)
        os.write(w, b'up')
        time.sleep(120)
    os._exit(0)
os.close(w)
print("grandchild", os.read(r, 2).decode(), flush=True)
"""


def test_detached_child_does_not_outlive_the_sample():
    marker = "hellora-detached-" + secrets.token_hex(8)
    completion = at_module_level(DETACHED.replace("MARKER", repr(marker)))
    res = run_then_good(completion)
    assert "grandchild up" in res.stdout  # it really started (double fork + setsid)
    assert processes_with(res.workdir) == []


def test_detached_child_killed_even_without_namespaces():
    """The fallback path (no pid namespace): the /proc sweep by session, uid or environment marker."""
    marker = "hellora-detached-nons-" + secrets.token_hex(8)
    completion = at_module_level(DETACHED.replace("MARKER", repr(marker)))
    sb = Sandbox(SandboxLimits(timeout=5), namespaces=False, require=())
    res = run_then_good(completion, sandbox=sb)
    assert res.protections["pid_namespace"] is False
    assert "grandchild up" in res.stdout
    assert processes_with(res.workdir) == []
    assert res.leftovers_killed >= 1  # the sweep, not the kernel, got it


def test_printing_gigabytes_keeps_memory_bounded():
    completion = in_function(
        """
        import os
        chunk = b"x" * (1 << 20)
        for _ in range(2048):
            os.write(1, chunk)
        """
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = run_then_good(completion, timeout=60)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert res.status == "failed"  # finished (returned None), not a timeout
    assert res.stdout_bytes == 2048 << 20
    assert len(res.stdout) == SandboxLimits().max_output_bytes and res.stdout_truncated
    assert grown_kib < 100 * 1024, f"harness grew by {grown_kib} KiB"


def test_sys_exit_before_the_tests():
    res = run_then_good(at_module_level("import sys\nsys.exit(0)"))
    assert res.exit_code == 0 and res.status == "failed"


def test_os_exit_before_the_tests():
    res = run_then_good(at_module_level("import os\nos._exit(0)"))
    assert res.exit_code == 0 and res.status == "failed"


def test_candidate_raising_systemexit_inside_check():
    res = run_then_good(in_function("raise SystemExit(0)"))
    assert res.status == "failed" and "SystemExit" in res.summary()


def test_monkeypatching_the_checker():
    completion = at_module_level(
        """
        import atexit, builtins, os
        def check(candidate):  # the real check() defined later replaces this ...
            return True
        builtins.check = check  # ... and a module global shadows builtins
        builtins.AssertionError = type("Quiet", (Exception,), {})  # `assert` does not look this up
        atexit.register(os._exit, 0)  # turn the failing run's exit status into 0
        """
    )
    res = run_then_good(completion)
    assert res.status == "failed" and res.summary() == "failed: AssertionError"  # the checker's own assert


def test_deep_recursion():
    completion = at_module_level(
        """
        import sys
        sys.setrecursionlimit(10**8)
        def down(n):
            return down(n + 1)
        down(0)
        """,
        returns="a + b",
    )
    # Python 3.11+ keeps Python frames off the C stack, so this grows memory until RLIMIT_AS stops it
    # (older versions crash with SIGSEGV instead). Either way: a failure, and the harness carries on.
    res = run_then_good(completion, timeout=30, memory_bytes=256 << 20)
    assert res.status == "failed"


@pytest.mark.parametrize("default_sigxfsz", [False, True])
def test_huge_file(default_sigxfsz):
    # CPython ignores SIGXFSZ at start-up, so a write past RLIMIT_FSIZE normally fails with EFBIG; a sample
    # that restores the default action is killed by the signal instead.
    completion = in_function(
        f"""
        import os, signal
        if {default_sigxfsz}:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        with open("big.bin", "wb") as f:
            try:
                for _ in range(64):
                    f.write(b"\\0" * (1 << 20))
                    f.flush()
            except OSError as e:
                print("stopped at", os.path.getsize("big.bin"), e.errno, flush=True)
                raise
        return a + b
        """
    )
    res = run_then_good(completion, max_file_bytes=8 << 20)
    if default_sigxfsz:
        assert res.exit_code == -signal.SIGXFSZ
    else:
        size, errno_ = (int(x) for x in res.stdout.split("stopped at")[1].split()[:2])
        assert size <= 8 << 20 and errno_ == 27  # EFBIG


# --------------------------------------------------------------------------------------------------------
# All attacks at once, in parallel, with good samples at the end
# --------------------------------------------------------------------------------------------------------


def test_all_attacks_in_one_parallel_batch(open_dir, protections):
    canary = make_canary(open_dir / "canary")
    marker = "hellora-batch-" + secrets.token_hex(8)
    hostile = [
        at_module_level("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        in_function("while True:\n    pass"),
        in_function("x = bytearray(8 << 30)\nreturn a + b"),
        in_function(f"import shutil\nshutil.rmtree({str(open_dir / 'canary')!r})\nreturn a + b"),
        in_function("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass"),
        at_module_level(DETACHED.replace("MARKER", repr(marker))),
        in_function("import os\nfor _ in range(1024):\n    os.write(1, b'y' * (1 << 20))"),
        at_module_level("import sys\nsys.exit(0)"),
        at_module_level("import os\nos._exit(0)"),
        at_module_level("import atexit, os\natexit.register(os._exit, 0)"),
        at_module_level("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)", "a + b"),
        in_function("open('big', 'wb').write(bytes(64 << 20))\nreturn a + b"),
    ]
    if protections.get("pid_namespace") or protections.get("uid_dropped"):
        hostile.append(at_module_level("import os, signal\nos.kill(-1, signal.SIGKILL)", "a + b"))
    programs = [sample(ADD, c) for c in hostile] + [GOOD] * 4
    sb = Sandbox(SandboxLimits(timeout=4, max_processes=16))
    start = time.monotonic()
    results = sb.run_many(programs, workers=4, progress=False)
    elapsed = time.monotonic() - start
    bad = [(i, r.status, r.stderr[-200:]) for i, r in enumerate(results[: len(hostile)]) if r.passed]
    assert bad == []
    assert all(r.passed for r in results[len(hostile) :]), [r.summary() for r in results[len(hostile) :]]
    assert all(r.leftovers_surviving == 0 for r in results)
    for r in results:
        assert processes_with(r.workdir) == []
    for path, data in canary.items():
        assert path.read_bytes() == data
    assert elapsed < 60


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts Linux tasks")
def test_process_limit_counts_threads_as_the_kernel_does():
    """Without root or a user namespace, RLIMIT_NPROC is set above what the user already runs, and the kernel
    counts threads there, not processes: a harness with many threads must not leave a sample unable to fork."""
    import importlib.util

    from hellora.eval.sandbox.runner import LAUNCHER

    spec = importlib.util.spec_from_file_location("sandbox_launcher", LAUNCHER)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    stop = threading.Event()
    before = launcher.user_tasks(os.getuid())
    workers = [threading.Thread(target=stop.wait) for _ in range(5)]
    for w in workers:
        w.start()
    try:
        assert launcher.user_tasks(os.getuid()) >= before + 5
    finally:
        stop.set()
        for w in workers:
            w.join()


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="reads Linux capability sets")
def test_capability_check_reads_the_process_sets():
    """A non-root sample without a user namespace cannot drop a capability bounding set (that needs one), but holds
    no capabilities either: the launcher reports that from the process's own sets."""
    import importlib.util

    from hellora.eval.sandbox.runner import LAUNCHER

    spec = importlib.util.spec_from_file_location("sandbox_launcher", LAUNCHER)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    with open("/proc/self/status") as f:
        sets = [int(line.split(":")[1], 16) for line in f if line.startswith(("CapPrm", "CapEff"))]
    assert launcher.holds_no_capabilities() == (sets == [0, 0])
    if os.geteuid() == 0:  # a plain uid set from root loses every capability
        code = (f"import importlib.util as u; s = u.spec_from_file_location('l', {str(LAUNCHER)!r}); "
                "m = u.module_from_spec(s); s.loader.exec_module(m); import os; "
                "os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534); print(m.holds_no_capabilities())")
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert child.stdout.strip() == "True", child.stderr


# --------------------------------------------------------------------------------------------------------
# The score itself: forgeries are in test_eval_humaneval_forgery.py; here, what the sample can see
# --------------------------------------------------------------------------------------------------------


def test_the_tests_and_the_nonce_are_in_no_file_argument_or_environment_the_sample_can_read():
    completion = in_function(
        """
        import os
        seen = open(__file__).read() + repr(os.environ) + open("/proc/self/cmdline").read()
        for pid in os.listdir("/proc"):
            try:
                seen += open("/proc/%s/cmdline" % pid).read() + open("/proc/%s/environ" % pid).read()
            except OSError:
                pass
        print(len(seen), flush=True)
        open("seen.txt", "w").write(seen)
        return a + b
        """)
    sb = Sandbox(SandboxLimits(timeout=10))
    nonces = []
    real = secrets.token_hex

    def recording(n=None):
        value = real(n)
        nonces.append(value)
        return value

    import hellora.eval.sandbox.runner as runner

    mp = pytest.MonkeyPatch()
    mp.setattr(runner.secrets, "token_hex", recording)
    try:
        res = sb.run(sample(ADD, completion))
        plain = sb.run(build_program(ADD, completion))
    finally:
        mp.undo()
    assert res.passed and int(res.stdout.split()[0]) > 0
    assert plain.passed and int(plain.stdout.split()[0]) > 0
    assert nonces and all(n not in res.stdout + res.stderr + plain.stdout + plain.stderr for n in nonces)
    # The checked sample's files, argv, environment and every process it can see hold no line of the tests
    seen = res.stdout + res.stderr
    assert "candidate(2, 3)" not in seen and "def check" not in seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp is Linux only")
def test_execve_is_blocked_for_the_sample_and_its_children(protections):
    need(protections, "exec_blocked")
    completion = in_function(
        """
        import os, subprocess, sys
        for attempt in (lambda: os.execv("/bin/true", ["/bin/true"]),
                        lambda: subprocess.run([sys.executable, "-c", "pass"]),
                        lambda: os.posix_spawn("/bin/true", ["/bin/true"], {})):
            try:
                attempt()
                print("ran", flush=True)
            except PermissionError:
                print("refused", flush=True)
        if os.fork() == 0:
            try:
                os.execv("/bin/true", ["/bin/true"])
            except PermissionError:
                os._exit(7)
            os._exit(0)
        print("child", os.waitstatus_to_exitcode(os.wait()[1]), flush=True)
        return a + b
        """)
    res = Sandbox(SandboxLimits(timeout=10)).run(sample(ADD, completion))
    assert res.passed and res.stdout.split()[:5] == ["refused", "refused", "refused", "child", "7"], res.stdout


def test_the_exec_filter_is_what_the_kernel_is_given():
    """The BPF rows, read independently of how they are built: a denied execve, execveat and foreign ABI."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("driver", Path(__file__).parents[2] / "src" / "hellora" / "eval" /
                                                  "sandbox" / "driver.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)

    def verdict(rows, arch, nr):  # a tiny classic-BPF interpreter for the four opcodes the filter uses
        pc, acc = 0, 0
        while True:
            code, jt, jf, k = rows[pc]
            if code == 0x20:
                acc = arch if k == 4 else nr
                pc += 1
            elif code == 0x15:
                pc += 1 + (jt if acc == k else jf)
            elif code == 0x35:
                pc += 1 + (jt if acc >= k else jf)
            else:
                return "allow" if k == 0x7FFF0000 else ("errno", k & 0xFFFF)

    rows = driver.exec_filter("x86_64")
    x86 = 0xC000003E
    assert verdict(rows, x86, 59) == verdict(rows, x86, 322) == ("errno", 1)
    assert verdict(rows, x86, 0) == verdict(rows, x86, 57) == verdict(rows, x86, 1) == "allow"  # read, fork, write
    assert verdict(rows, x86, 0x40000000 + 59) == ("errno", 1) and verdict(rows, 0x40000003, 11) == ("errno", 1)
    rows = driver.exec_filter("aarch64")
    assert verdict(rows, 0xC00000B7, 221) == ("errno", 1) and verdict(rows, 0xC00000B7, 220) == "allow"
    assert driver.exec_filter("sparc") is None


def test_humaneval_scoring_counts_suspect_passes_apart(tmp_path):
    import gzip
    import json

    from hellora.eval.humaneval import evaluate_humaneval_samples

    problems = tmp_path / "problems.jsonl.gz"
    with gzip.open(problems, "wt") as f:
        f.write(json.dumps(ADD) + "\n")
    samples = tmp_path / "samples.jsonl"
    always_equal = in_function("class Anything:\n    def __eq__(self, other):\n        return True\nreturn Anything()")
    reads_a_file = in_function("open('/dev/null').read()\nreturn a + b")  # correct, but it reads files
    rows = [{"task_id": "toy/add", "completion": c} for c in (ADD["canonical_solution"], always_equal, reads_a_file,
                                                              at_module_level("import sys\nsys.exit(0)"))]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = evaluate_humaneval_samples(samples, problems, ks=(1,), progress=False)
    assert summary["pass@1"] == pytest.approx(1 / 4) and summary["pass@1_with_suspect"] == pytest.approx(2 / 4)
    assert summary["suspect_passes"] == 1 and summary["protocol"] is None and summary["prompt_layout"] == "unstripped"
    results = [json.loads(line) for line in Path(summary["results_path"]).read_text().splitlines()]
    assert [(r["passed"], r["suspect"]) for r in results] == [(True, False), (False, True), (True, True),
                                                              (False, False)]
    assert results[1]["result"].startswith("failed: the candidate returned")
    assert "not plain data" in results[1]["result"]
