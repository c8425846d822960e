"""Python's side of SnakeBridge: call Elixir from Python.

Importable in the interpreter SnakeBridge embeds in the BEAM and in its port
workers. Elixir functions passed to Python arrive as :class:`Function` objects
(call them like any Python callable); pids, references and ports arrive as
:class:`Pid`, :class:`Reference` and :class:`Port`, opaque objects that come
back to Elixir as the same terms. See SnakeBridge's docs/callbacks.md.

    import snakebridge
    snakebridge.call("Enum", "sum", [1, 2, 3])      # 6
    snakebridge.send(pid, ("progress", 0.5))        # pid: a snakebridge.Pid
"""

from typing import Any

from _snakebridge import Cancelled, ElixirError, Function, Pid, Port, Reference
import _snakebridge

__all__ = ["call", "send", "Function", "Pid", "Reference", "Port", "ElixirError", "Cancelled"]


def call(module: str, function: str, /, *args: Any) -> Any:
    """Calls the Elixir function ``module.function`` with ``args`` and returns its result.

    ``module`` is an Elixir module name (``"Enum"``, ``"MyApp.Tools"``) or an
    Erlang one (``"lists"``, ``":lists"``). The arguments and the result
    convert as for any SnakeBridge call. During a call from Elixir the function
    runs for the calling Elixir process (and may call Python again); otherwise
    in a process under SnakeBridge's supervisor.

    Raises :class:`ElixirError` if the function raises, exits or throws, or
    does not exist.

    >>> call("Enum", "sum", [1, 2, 3])  # doctest: +SKIP
    6
    """
    return _snakebridge.call(module, function, *args)


def send(pid: Pid, message: Any) -> None:
    """Sends ``message`` (converted to Elixir) to the Elixir process ``pid``.

    Like Elixir's ``send/2`` it does not wait and does not fail when the
    process is gone.
    """
    _snakebridge.send(pid, message)
