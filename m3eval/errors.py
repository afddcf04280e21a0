"""Every error m3eval raises on purpose, in one tree under `M3evalError`.

Why one tree: the command line (cli.py) catches the base class and prints one line,
`m3eval: error: <message>`, with the class's `exit_code` (README "Exit codes"), never a
traceback; an error the user cannot fix (a bug) is not an M3evalError and keeps its traceback.
A module that needs an error imports it from here, and the module that raises it re-exports
it (`from m3eval.data.sources import DataError` keeps working for tests and plugins); a
test (tests/test_errors.py) fails when a module defines an error class of its own again.

Each class also keeps the builtin base it had before the tree existed (ValueError,
KeyError, RuntimeError), so an `except ValueError` anywhere means what it meant.

This is the bottom layer: it imports nothing from m3eval and nothing heavy.
"""
from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadMessageError", "DataError", "HubUnreachable", "M3evalError", "MediaError", "MissingFile", "ModelLoadError",
    "NotText", "ReplyTooLarge", "RequestError", "ResultsError", "RunError", "SampleError", "SampleScoreError",
    "ServerDown", "TaskError", "TemplateLimitError", "UsageError",
]


class M3evalError(Exception):
    """An error that is the user's to fix (usage, task files, data, model, run folder):
    the command line prints its message on one line and exits with `exit_code`."""

    exit_code: ClassVar[int] = 1
    """The process's exit status when this error ends a command (README "Exit codes")."""


class UsageError(M3evalError, ValueError):
    """Bad command-line usage: exit code 2."""

    exit_code: ClassVar[int] = 2


class TaskError(M3evalError, ValueError):
    """A task definition is wrong; the message names the file and the key."""


class TemplateLimitError(M3evalError, KeyError):
    """A template would expand beyond the prompt size bound (per row: that sample fails)."""


class ResultsError(M3evalError, ValueError):
    """A results or reference file that cannot be used (malformed, partial, older format)."""


class ModelLoadError(M3evalError, RuntimeError):
    """The model could not be loaded: the message says why and what to check."""


class BadMessageError(M3evalError, ValueError):
    """One message of a batch is malformed. `index` is its position in the batch,
    so a caller can record that sample as failed and run the others."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"message {index}: {reason}")
        self.index = index
        self.reason = reason

    def __reduce__(self) -> tuple[type[BadMessageError], tuple[int, str]]:
        # the default rebuilds from `args` (the one formatted message): not this constructor
        return type(self), (self.index, self.reason)


class RequestError(M3evalError, RuntimeError):
    """A request failed for good (after its retries, or a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[RequestError], tuple[str, int | None]]:
        return type(self), (str(self.args[0]) if self.args else "", self.status)


class ReplyTooLarge(RequestError):
    """A server's reply passed the bound on what one reply may bring (the backend's
    `max_reply_bytes`): it was not read further, and that sample fails, counted."""


class SampleError(M3evalError, ValueError):
    """A row does not fit the task's doc spec; the message names the task, row and field."""


class SampleScoreError(M3evalError, ValueError):
    """A metric cannot score one sample (no gold answer, a malformed record). `index` is its
    position in the metric's input, so the scorer can name the sample by its id."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"sample {index}: {reason}")
        self.index = index
        self.reason = reason

    def __reduce__(self) -> tuple[type[SampleScoreError], tuple[int, str]]:
        return type(self), (self.index, self.reason)


class DataError(M3evalError, ValueError):
    """A dataset cannot be loaded; the message names the task, source and cause."""


class MissingFile(DataError):
    """A raw file the config needs is not in the snapshot or the hub repo."""


class HubUnreachable(DataError):
    """The hub cannot be reached and the file is not cached."""


class NotText(DataError):
    """A field value with no faithful text form (bytes, a mapping, a list where one value is
    meant): that row fails, counted; an id that is not text fails the task."""


class MediaError(M3evalError, ValueError):
    """An image or video that cannot be decoded; the message names the kind and the cause."""


class RunError(M3evalError, RuntimeError):
    """The run cannot go on (nothing finished is lost); the message says why."""


class ServerDown(RunError):
    """The model's server stopped answering (refused, reset or timed out, request after request,
    across samples): the run stops, naming the server; the same command resumes."""
