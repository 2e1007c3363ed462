"""What travels on a sample's private result pipe, and how a pass is recognised.

The pipe is inherited by the launcher, which moves it to fd `RESULT_FD` and writes one report before the
sample starts: "P <json protections>" or, if it refuses to run the sample, "E <json error and protections>".
The sample's program ends with a trailer that writes a per-run random nonce to the same fd. The trailer
runs only if everything above it ran to completion, so a pass needs the nonce *and* exit status 0:
`sys.exit(0)`, `os._exit(0)` or an `atexit` hook before or instead of the checks cannot fake one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RESULT_FD = 3  # the launcher moves the private result pipe here (launcher.RES); the trailer writes the nonce to it


def with_trailer(program: str, nonce: str) -> str:
    """`program` followed by the code that proves it ran to the end."""
    trailer = (
        "\n\n# hellora sandbox: reached only if everything above ran to completion\n"
        f'__import__("os").write({RESULT_FD}, b"{nonce}\\n")\n'
    )
    return program + trailer


@dataclass
class Report:
    """What the result pipe said: the launcher's protections or refusal, and whether the nonce arrived."""

    protections: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    nonce_seen: bool = False


def read_report(text: str, nonce: str) -> Report:
    """Parse everything read from the result pipe."""
    report = Report()
    for line in text.splitlines():
        if line == nonce:
            report.nonce_seen = True
        elif line.startswith(("P ", "E ")) and not report.protections and report.error is None:
            # Only the first report counts: it is written by the launcher before the sample starts.
            try:
                payload = json.loads(line[2:])
            except ValueError:
                continue
            if line[0] == "P":
                report.protections = payload
            else:
                report.error = str(payload.get("error"))
                report.protections = payload.get("protections", {})
    return report
