"""The trusted HumanEval checker: runs a problem's tests against a candidate that lives in another process.

Never imported by the harness. `runner.py` starts it, in its own process (not the harness's, not the sample's), as

    python -I -S -B -c <bootstrap + this file>

with the payload on stdin ({"prompt", "test", "entry_point", "calls_fd", "replies_fd"}), the write end of the
sample's call pipe and the read end of its reply pipe inherited at those numbers, and writes one verdict line
({"passed", "calls", "failure", "failure_kind", "suspect_reasons"}) to the stdout it started with.

Why: the sample's process must hold neither the tests nor the proof of a pass. Here, `check(candidate)` runs with
`candidate` bound to a proxy that sends each call's arguments to the sample and returns the value that comes back,
rebuilt from plain data (`plain_data.py`), so every comparison (`==`, `abs(...) < tol`, `assert`) happens on
builtin values in this interpreter, whose builtins the sample cannot patch. An exception the candidate raised
comes back as its name and message and is raised here (builtin exception classes by name, else
`CandidateRaised`). A value that is not plain data, a malformed reply or a sample that died makes the sample fail,
even if `check` swallowed the exception. The prompt is run here too: three HumanEval checks call its helpers.
The prompt and tests are the benchmark's own (trusted) code; they run with the harness's privileges.

Standard library only, outside any package (`-I -S`); `plain_data` is loaded first by the bootstrap.
"""

import builtins
import json
import os
import sys
import traceback

TYPE_CHECKING = False  # the type checker reads the import below; the sandbox never loads typing
if TYPE_CHECKING:
    from types import CodeType
    from typing import Any, Callable, NoReturn

try:
    import plain_data  # put in sys.modules by the bootstrap
except ImportError:  # imported as a module by the tests
    from hellora.eval.sandbox import plain_data

MAX_REPLY_BYTES = 32 << 20


class CandidateRaised(Exception):
    """The candidate raised an exception that is not a builtin one (or one the checker will not re-raise as is)."""


class CandidateBroken(Exception):
    """The sample cannot answer: it died, sent something that is not a reply, or returned a non-plain value."""


class Session:
    """The pipe pair to one sample and what went wrong on it (a violation fails the sample whatever `check` says)."""

    def __init__(self, calls_fd: int, replies_fd: int, entry: str) -> None:
        self.calls_fd = calls_fd
        self.replies = os.fdopen(replies_fd, "rb")
        self.entry = entry
        self.calls = 0
        self.violation: "tuple[str, str] | None" = None  # (kind, text) of the first protocol violation
        self.suspect: "list[str]" = []

    def broken(self, kind: str, text: str) -> "NoReturn":
        if self.violation is None:
            self.violation = (kind, text)
        raise CandidateBroken(text)

    def call(self, args: "tuple[object, ...]", kwargs: "dict[str, object]") -> object:
        if self.violation is not None:
            raise CandidateBroken(self.violation[1])
        self.calls += 1
        message = {"args": plain_data.to_wire(list(args)), "kwargs": plain_data.to_wire(dict(kwargs))}
        data = plain_data.dumps(message)
        try:
            while data:
                data = data[os.write(self.calls_fd, data):]
        except OSError as e:
            self.broken("no_reply", "the candidate's process is gone (%s)" % e.strerror)
        line = self.replies.readline(MAX_REPLY_BYTES + 1)
        if not line:
            self.broken("no_reply", "the candidate's process ended without answering call %d" % self.calls)
        if not line.endswith(b"\n"):
            self.broken("protocol", "a reply longer than %d bytes" % MAX_REPLY_BYTES)
        try:
            reply = plain_data.loads(line)
            if "ok" in reply:
                return plain_data.from_wire(reply["ok"])
        except ValueError as e:
            self.broken("protocol", "a malformed reply: %s" % e)
        if "raised" in reply:
            raise exception_for(str(reply["raised"])[:100], str(reply.get("message", ""))[:1000])
        if "not_plain" in reply:
            what = str(reply["not_plain"])[:200]
            if reply.get("looks_forged") is True:
                self.suspect.append("returned an object imitating plain data (%s)" % what)
            self.broken("not_plain", "the candidate returned %s, which is not plain data" % what)
        self.broken("protocol", "a malformed reply: %s" % str(reply)[:200])


def exception_for(name: str, message: str) -> Exception:
    """The exception to raise for one the candidate raised: the builtin class of that name when there is one (so a
    check expecting e.g. ValueError still works), else `CandidateRaised`. Never SystemExit / KeyboardInterrupt."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # a builtin whose constructor wants other arguments (UnicodeDecodeError ...)
            pass
    return CandidateRaised("%s: %s" % (name, message))


def make_candidate(session: Session) -> "Callable[..., object]":
    def candidate(*args: object, **kwargs: object) -> object:
        return session.call(args, kwargs)

    candidate.__name__ = candidate.__qualname__ = session.entry
    return candidate


def last_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def prompt_code(prompt: str) -> "CodeType":
    """The prompt as code: as given (HumanEval's prompts end in a docstring, a complete function), or with a `pass`
    body added (a bare signature); its stub of the entry point is replaced by the candidate anyway."""
    try:
        return compile(prompt, "<prompt>", "exec")
    except SyntaxError:
        return compile(prompt.rstrip() + "\n    pass\n", "<prompt>", "exec")


def check_sample(payload: "dict[str, Any]") -> "dict[str, Any]":
    """Run the problem's `check` against the sample behind the pipes; return the verdict dict."""
    session = Session(payload["calls_fd"], payload["replies_fd"], payload["entry_point"])
    candidate = make_candidate(session)
    namespace: "dict[str, Any]" = {"__name__": "__hellora_check__", "__builtins__": builtins}
    failure = kind = None
    try:
        exec(prompt_code(payload["prompt"]), namespace)
        exec(compile(payload["test"], "<tests>", "exec"), namespace)
        namespace[payload["entry_point"]] = candidate
        namespace["check"](candidate)
    except CandidateBroken as e:
        failure, kind = str(e), "broken"
    except AssertionError as e:
        failure, kind = last_line(e), "assertion"
    except BaseException as e:  # noqa: B036 -- a check that raises anything has not passed
        failure, kind = last_line(e), "exception"
    if session.violation is not None:  # even if `check` caught the exception
        kind, failure = session.violation
    return {"passed": failure is None, "calls": session.calls, "failure": failure, "failure_kind": kind,
            "suspect_reasons": sorted(set(session.suspect))}


def main() -> None:
    payload = json.loads(sys.stdin.read())
    verdict_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the tests print goes to stderr: stdout carries the verdict only
    verdict = check_sample(payload)
    data = (json.dumps(verdict) + "\n").encode()
    while data:
        data = data[os.write(verdict_fd, data):]
    os.close(verdict_fd)


if __name__ == "__main__":
    main()
