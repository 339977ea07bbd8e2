"""TensorBoard event files (`events.out.tfevents.*`) written without TensorBoard or TensorFlow installed:
scalars only, in the TFRecord framing and the `Event`/`Summary` protobuf fields TensorBoard reads
(docs/tasks.md#tensorboard). `tensorboard --logdir _snapshot` shows every run of that folder."""
import os
import socket
import struct
import time

__all__ = ["EventWriter", "read_events"]


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    c = crc32c(data)
    return struct.pack("<I", (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time, step=None, file_version=None, scalars=None) -> bytes:
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time)               # Event.wall_time (double)
    if step is not None:
        out += _varint(2 << 3) + _varint(int(step))                          # Event.step (int64)
    if file_version is not None:
        out += _field(3, file_version.encode())                              # Event.file_version
    if scalars:
        values = b"".join(_field(1, _field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", v))
                          for tag, v in scalars.items())                     # Summary.Value: tag, simple_value
        out += _field(5, values)                                             # Event.summary
    return out


class EventWriter:
    """Append scalars to one event file in `log_dir` (a new file per writer, as TensorBoard's own)."""

    def __init__(self, log_dir):
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(str(log_dir), name)
        self._write(_event(time.time(), file_version="brain.Event:2"))

    def _write(self, record: bytes):
        header = struct.pack("<Q", len(record))
        with open(self.path, "ab") as f:
            f.write(header + _masked(header) + record + _masked(record))

    def scalars(self, step, values):
        """{tag: number} at `step`; values that are not finite numbers are left out."""
        values = {k: float(v) for k, v in values.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}
        if values:
            self._write(_event(time.time(), step, scalars=values))


def _parse(buf):
    """{field number: [values]} of one protobuf message (varint, 64-bit, length-delimited, 32-bit wire types)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _read_varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _read_varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        out.setdefault(num, []).append(val)
    return out


def _read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def read_events(path):
    """[(step, tag, value)] of an event file's scalars, checking every record's checksums."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        header = data[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        if data[i + 8:i + 12] != _masked(header) or data[i + 12 + n:i + 16 + n] != _masked(data[i + 12:i + 12 + n]):
            raise ValueError(f"{path}: checksum mismatch at byte {i}")
        ev = _parse(data[i + 12:i + 12 + n])
        i += 16 + n
        step = ev.get(2, [0])[0]
        for summary in ev.get(5, []):
            for value in _parse(summary).get(1, []):
                v = _parse(value)
                out.append((step, v[1][0].decode(), struct.unpack("<f", v[2][0])[0]))
    return out
