"""Who may let a model folder run its own Python code: the user, on the command line, and nobody else.

A model folder (or hub repository) whose `config.json` has an `auto_map` ships modelling code that transformers
imports, and so runs, when `trust_remote_code` is on. hellora turns it on only from the user's own choice:
`--trust-remote-code` on the command line, or `model.trust_remote_code: true` in a recipe the user runs with
`hellora train`. A record that hellora reads (an adapter's `hellora_adapter.json`, a run's files) is untrusted
input, however it got to the machine: it can say that its base model needed the flag, and then hellora refuses
with one line asking the user to add it, but it never turns the flag on itself.

`hellora.models.loading` is the only module that calls transformers' loaders (`from_pretrained`, `from_config`,
`AutoConfig`); it takes the decision through `user_trust`, which accepts only a real `bool`, never a value read
from a file (`tests/models/test_trust.py` checks both by reading the source).
"""

from __future__ import annotations

from hellora.utils.errors import HelloraError

FLAG = "--trust-remote-code"


def user_trust(value: object) -> bool:
    """The user's `trust_remote_code` choice, which must be a plain bool (a flag or a checked recipe field).

    Anything else (a string such as "false", which is truthy, or a number from a hand-edited file) is a bug in the
    caller, not a user choice: refuse it rather than guess.
    """
    if type(value) is not bool:
        raise TypeError(f"trust_remote_code must be a bool chosen by the user, got {type(value).__name__}")
    return value


def check_recorded_trust(recorded: object, user_flag: bool, where: str) -> None:
    """Refuse, in one line, a record saying its base model runs its own code when the user did not allow it.

    `recorded` is the record's `trust_remote_code` value (any JSON value: only `true` means the base needed it);
    `where` names the record, e.g. "adapter runs/x/adapter". The record never switches the flag on.
    """
    if recorded is True and not user_trust(user_flag):
        raise HelloraError(f"{where} records a base model that runs its own Python code (trust_remote_code); "
                           f"hellora runs it only if you ask: add {FLAG} if you trust that model")


def remote_code_refusal(model: str) -> HelloraError:
    """The one line for transformers' refusal to import a folder's code without `trust_remote_code`."""
    return HelloraError(f"model {model!r} holds its own Python code (an auto_map in its config.json), which hellora "
                        f"does not run unless you ask: add {FLAG} if you trust it")
