"""What travels on a sample's private result pipe, and how a plain program's run to the end is recognised.

(A HumanEval sample passes on the trusted checker's verdict instead, `checked.py`; its driver serves calls on
`CALLS_FD` / `REPLIES_FD` and never sees a nonce. What follows is the result pipe both modes share, and the nonce
of plain program runs.)

The pipe is inherited by the launcher, which moves it to fd `RESULT_FD` and writes one report before the
sample's interpreter starts: "P <json protections>" or, if it refuses to run the sample, "E <json error and
protections>". The trusted driver (`driver.py`) that starts in the sample's interpreter then writes "S <json>"
(whether execve is blocked) and runs the program. The per-run nonce reaches the driver through a second pipe
(`NONCE_FD`) that it reads once and closes, so it is in no file, argv, environment or code object the program
could read. The driver writes the nonce to `RESULT_FD` only after the program returned, so a pass needs the nonce
*and* exit status 0: `sys.exit(0)`, `os._exit(0)`, `SystemExit` in the checks or an `atexit` hook cannot fake one.
Only the first "P"/"E" and the first "S" report count: they are written before the program runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RESULT_FD = 3  # the launcher moves the private result pipe here (launcher.RES); the driver writes the nonce to it
NONCE_FD = 4  # a plain program run: the nonce pipe lands here; the driver reads it once
CALLS_FD, REPLIES_FD = 4, 5  # a checked sample: the checker's calls arrive on 4, the driver answers on 5


@dataclass
class Report:
    """What the result pipe said: the launcher's protections or refusal, and whether the nonce arrived."""

    protections: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    nonce_seen: bool = False


def read_report(text: str, nonce: str) -> Report:
    """Parse everything read from the result pipe."""
    report = Report()
    driver: dict[str, Any] | None = None
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
        elif line.startswith("S ") and driver is None and report.protections:
            try:
                driver = json.loads(line[2:])
            except ValueError:
                driver = {}
    if driver is not None and isinstance(driver, dict) and report.protections:
        report.protections["exec_blocked"] = driver.get("exec_blocked") is True
        notes = driver.get("notes")
        if isinstance(notes, list):
            report.protections.setdefault("notes", []).extend(str(n) for n in notes)
    return report
