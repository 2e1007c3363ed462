"""Watching a running sample: its three pipes read with byte caps, the wall-clock deadline, and the kill
sweep once it is done. Every stream is read continuously, so a sample printing gigabytes never blocks and
never fills the harness's memory."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from hellora.eval.sandbox.processes import has_exited, kill_sample


class CappedBuffer:
    """Keep the first `cap` bytes of a stream, count the rest and throw it away."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


@dataclass(frozen=True)
class SampleStreams:
    """What a running sample writes, each read into a capped buffer: its stdout, its stderr and the launcher's
    protection report (the result pipe)."""

    out: CappedBuffer
    err: CappedBuffer
    res: CappedBuffer

    @classmethod
    def capped(cls, max_output_bytes: int) -> SampleStreams:
        """stdout and stderr capped at `max_output_bytes`, the report at 64 KiB."""
        return cls(CappedBuffer(max_output_bytes), CappedBuffer(max_output_bytes), CappedBuffer(64 << 10))


class SampleEnd(NamedTuple):
    """How a sample's run ended: whether it timed out, leftover processes killed, processes that survived."""

    timed_out: bool
    killed: int
    surviving: int


def collect(
    proc: "subprocess.Popen[bytes]",
    read_fd: int,
    streams: SampleStreams,
    *,
    deadline: float,
    uid: int | None,
    marker: bytes,
    stop: Callable[[], bool] | None = None,
) -> SampleEnd:
    """Read stdout, stderr and the result pipe (`read_fd`) into `streams`' buffers until the sample is done (or
    `deadline`, a time.monotonic() value, or `stop()` is true: the checker has decided), then destroy its
    process tree.

    Returns (timed out, leftover processes killed, processes that survived) as a `SampleEnd`.
    """
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None  # the launcher is started with both piped
    buffers = {proc.stdout.fileno(): streams.out, proc.stderr.fileno(): streams.err, read_fd: streams.res}
    for fd in buffers:
        sel.register(fd, selectors.EVENT_READ)
    timed_out = False
    swept = False
    killed = 0
    drain_until: float | None = None  # set, with `swept`, once the sample's tree is swept
    try:
        while sel.get_map():
            now = time.monotonic()
            if not swept and now >= deadline:
                timed_out = True
                break
            if drain_until is not None and now >= drain_until:
                break  # a straggler we could not kill holds a pipe: stop waiting for EOF
            limit = (deadline if drain_until is None else drain_until) - now
            for key, _ in sel.select(timeout=max(0.0, min(limit, 0.05))):
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except OSError:
                    chunk = b""
                if chunk:
                    buffers[key.fd].add(chunk)
                else:
                    sel.unregister(key.fd)
            if not swept and (has_exited(proc) or (stop is not None and stop())):
                # The sample's main process is done (or no longer needed): nothing it started may outlive it.
                extra, _ = kill_sample(proc.pid, uid, marker)
                killed += extra
                swept = True
                drain_until = time.monotonic() + 2.0
    finally:
        sel.close()
    # All pipes closed: the launcher itself is a moment from exiting. Let it (its exit status is the
    # sample's), but never past the deadline.
    while not timed_out and not has_exited(proc):
        if time.monotonic() >= deadline:
            timed_out = True
        else:
            time.sleep(0.002)
    extra, surviving = kill_sample(proc.pid, uid, marker)
    proc.wait()
    # The launcher is reaped, so its pid may be reused: sweep by uid and marker only.
    extra2, surviving = kill_sample(None, uid, marker)
    return SampleEnd(timed_out, killed + extra + extra2, surviving)
