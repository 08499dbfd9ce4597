"""User-facing errors: one line, an exit code, never a traceback.

Exit codes follow BSD sysexits so that cron and CI can tell a bad file (65) from a bad
setup (78) from a run that could not reach a model (69)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FIRING = 1  # `canary check` / `canary run`: an alert is firing (so cron can page on it)
EXIT_USAGE = 64
EXIT_DATAERR = 65  # a canary or config file is malformed
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
EXIT_IOERR = 74
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78  # consistent files, inconsistent setup: duplicate ids, unknown scorer, missing key variable


class CanaryError(Exception):
    """An error meant for the user: printed as one line, exits with `exit_code`."""

    exit_code = EXIT_SOFTWARE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class FileError(CanaryError):
    """A malformed canary or config file: `path:line field: problem (hint)`."""

    exit_code = EXIT_DATAERR

    def __init__(
        self,
        path: str,
        line: int | None,
        field: str | None,
        problem: str,
        hint: str | None = None,
        *,
        exit_code: int | None = None,
    ) -> None:
        where = f"{path}:{line}" if line else path
        text = f"{where} {field}: {problem}" if field else f"{where}: {problem}"
        if hint:
            text += f" ({hint})"
        super().__init__(text, exit_code=exit_code)
        self.path, self.line, self.field, self.problem, self.hint = path, line, field, problem, hint


class SetupError(CanaryError):
    """Files are well-formed but do not fit together or with the environment."""

    exit_code = EXIT_CONFIG


class StoreError(CanaryError):
    """The database cannot be used: wrong schema version, locked, full, unreachable."""

    exit_code = EXIT_IOERR
