"""The one error type for bad user input: its message is a single line naming the file
and the problem; the plugin turns it into pytest's usage error (exit 4)."""


class InputError(Exception):
    pass
