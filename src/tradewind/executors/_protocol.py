"""The executor's side of its sockets: non-blocking, buffered, length-prefixed JSON frames.

Frames are those of :mod:`tradewind.runtime.supervisor` (4-byte big-endian length, compact
UTF-8 JSON object). Three kinds of connection use them:

* **worker channel** (one per warm worker, for its whole life)::

      executor -> worker  {"op": "run", "workload": {...}, "hard_timeout": 15.0,
                           "grace": 5.0, "preload": true, "spare": true}
                                                             + the try channel's socket (SCM_RIGHTS)
                          {"op": "kill"}                     stop the running try
                          {"op": "stop", "grace": 5.0}       stop the try, then exit
      worker -> executor  {"op": "ready", "pid": 123}
                          {"op": "exited", "pid": 456, "code": 0, "signal": null,
                           "reason": null | "killed" | "timeout" | "stopping" | "fork failed: ...",
                           "retire": false}

* **try channel** (a socketpair per try; the executor keeps one end, the task process gets
  the other through the worker): the request/reply exchange and the final ``outcome``
  message described in :mod:`tradewind.runtime.supervisor`. Because every try has its own
  channel, a task process killed halfway through writing a frame can only garble its own
  channel, which is dropped with it.
"""

from __future__ import annotations

import array
import json
import socket
from collections import deque
from typing import Any

from tradewind.errors import TradewindError
from tradewind.runtime.supervisor import FRAME_HEADER, MAX_FRAME_SIZE, encode_frame

__all__ = ["Channel", "encode_frame"]

_READ_SIZE = 1 << 16


class Channel:
    """One non-blocking socket of the executor, with an input and an output buffer.

    ``read()`` returns the complete frames that have arrived and whether the peer closed;
    ``send()`` writes at once as far as the socket takes it and keeps the rest for
    ``flush()`` (call it when the socket is writable; ``wants_write`` says whether to).
    A socket to pass along with a frame (SCM_RIGHTS) is closed here once it has been sent.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._in = bytearray()
        # (data, socket to pass with its first byte or None)
        self._out: deque[tuple[memoryview, socket.socket | None]] = deque()
        self.closed = False
        #: Whether the selector watches this socket for writability (kept by the owner).
        self.watching_write = False

    def fileno(self) -> int:
        """The socket's file descriptor (-1 once closed)."""
        return -1 if self.closed else self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        """Whether output is waiting for the socket to become writable."""
        return bool(self._out)

    def read(self) -> tuple[list[dict[str, Any]], bool]:
        """Everything readable now: (complete messages, peer closed)."""
        eof = False
        while True:
            try:
                chunk = self.sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            self._in += chunk
            if len(chunk) < _READ_SIZE:
                break
        return self._frames(), eof

    def _frames(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        buf = self._in
        offset = 0
        while len(buf) - offset >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(buf, offset)
            if size > MAX_FRAME_SIZE:
                raise TradewindError(f"peer sent a frame of {size} bytes (limit {MAX_FRAME_SIZE})")
            end = offset + FRAME_HEADER.size + size
            if len(buf) < end:
                break
            message = json.loads(buf[offset + FRAME_HEADER.size : end].decode("utf-8"))
            if not isinstance(message, dict):
                raise TradewindError(f"peer sent a frame that is not an object: {message!r}")
            messages.append(message)
            offset = end
        if offset:
            del buf[:offset]
        return messages

    def send(self, message: dict[str, Any], *, pass_socket: socket.socket | None = None) -> None:
        """Queue ``message`` (with a socket to hand over) and write what the socket takes now."""
        if self.closed:
            if pass_socket is not None:
                pass_socket.close()
            return
        self._out.append((memoryview(encode_frame(message)), pass_socket))
        self.flush()

    def flush(self) -> None:
        """Write queued output until the socket would block."""
        while self._out and not self.closed:
            data, passing = self._out[0]
            try:
                if passing is not None:
                    fds = array.array("i", [passing.fileno()])
                    sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    passing.close()
                else:
                    sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # The peer is gone; reading will tell, and nothing more can be sent.
                self._drop_output()
                return
            rest = data[sent:]
            if rest:
                self._out[0] = (rest, None)
            else:
                self._out.popleft()

    def _drop_output(self) -> None:
        for _, passing in self._out:
            if passing is not None:
                passing.close()
        self._out.clear()

    def close(self) -> None:
        """Close the socket (and any socket still waiting to be passed)."""
        if not self.closed:
            self._drop_output()
            self.closed = True
            self.sock.close()
