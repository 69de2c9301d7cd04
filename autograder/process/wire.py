"""The only format that crosses the boundary between the grader and a student's process.

A message is JSON-like data (None, bool, int, float, str, list, dict with str keys) plus
numeric numpy arrays, framed as

    8-byte big-endian length | 4-byte header length | JSON header | array bytes ...

Decoding never runs code (no pickle) and accepts only numeric dtypes, so whatever a
student's process sends back is inert data. This module must import nothing but the standard
library and numpy: it is copied into the student's sandbox next to worker.py.
"""
import json
import math
import os
import struct

import numpy as np

MAX_MESSAGE_BYTES = 256 * 2**20
MAX_DEPTH = 16               # nesting of lists and dicts a message may have
MAX_DIMENSIONS = 32          # of an array
NUMERIC_KINDS = "biufc"


class WireError(Exception):
    """A message that is malformed, too large or holds something that is not plain data."""


def encode_parts(obj):
    """obj -> one framed message (see module docstring) as a list of buffers: the frame's head
    and header, then each array's bytes, not copied."""
    blobs = []

    def walk(value):
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in NUMERIC_KINDS:
                raise WireError(f"array of dtype {value.dtype} is not numeric")
            blobs.append(memoryview(np.ascontiguousarray(value).reshape(-1).view(np.uint8)))
            return {"__nd__": blobs[-1].nbytes, "dtype": value.dtype.str, "shape": list(value.shape)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise WireError("dict keys must be strings")
            if "__nd__" in value:
                raise WireError("reserved key __nd__")
            return {k: walk(v) for k, v in value.items()}
        raise WireError(f"a {type(value).__name__} is not plain data")

    header = json.dumps(walk(obj)).encode()
    size = 4 + len(header) + sum(blob.nbytes for blob in blobs)
    return [struct.pack(">QI", size, len(header)) + header, *blobs]


def encode(obj):
    """obj -> bytes of one framed message."""
    return b"".join(encode_parts(obj))


def decode(body):
    """One message body (without the 8-byte length) -> obj; raises WireError. Arrays are views
    of `body` when it is a bytearray, else copies: writable either way."""
    try:
        (hlen,) = struct.unpack(">I", body[:4])
        header = json.loads(body[4:4 + hlen])
    except (struct.error, ValueError, RecursionError) as exc:
        raise WireError(f"bad header: {type(exc).__name__}") from None
    offset = 4 + hlen

    def walk(value, depth=0):
        nonlocal offset
        if depth > MAX_DEPTH:
            raise WireError("message nested too deeply")
        if isinstance(value, list):
            return [walk(v, depth + 1) for v in value]
        if isinstance(value, dict):
            if "__nd__" not in value:
                return {k: walk(v, depth + 1) for k, v in value.items()}
            try:
                dtype = np.dtype(value["dtype"])
                shape = tuple(int(n) for n in value["shape"])
                nbytes = int(value["__nd__"])
            except Exception:   # whatever a forged header makes numpy or int() raise (inf: OverflowError)
                raise WireError("not a numeric array") from None
            if (dtype.kind not in NUMERIC_KINDS or dtype.hasobject or len(shape) > MAX_DIMENSIONS
                    or min(shape, default=0) < 0):
                raise WireError("not a numeric array")
            # math.prod: exact, where int64 would wrap (2**62 x 4 -> 0)
            if nbytes != dtype.itemsize * math.prod(shape) or offset + nbytes > len(body):
                raise WireError("array size does not match its shape")
            array = np.frombuffer(body, dtype, offset=offset, count=nbytes // max(dtype.itemsize, 1))
            offset += nbytes
            try:
                array = array.reshape(shape)
            except ValueError:      # a zero-sized array with a dimension numpy refuses
                raise WireError("not a numeric array") from None
            return array if array.flags.writeable else array.copy()
        return value

    return walk(header)


def plain(value, depth=0):
    """A student's return value -> plain data `encode` can carry, or TypeError: numeric arrays,
    numbers, None, short strings, and lists/tuples/dicts of them."""
    if depth > MAX_DEPTH // 2:
        raise TypeError("returned a structure nested too deeply")
    if isinstance(value, (np.ndarray, np.generic)):
        if np.asarray(value).dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"returned an array of dtype {np.asarray(value).dtype}, not numbers")
        return np.asarray(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"returned a {type(value).__name__[:40]}, not an array")


def send(fd, obj, _parts=encode_parts, _writev=os.writev):
    """Write one message to a file descriptor (arrays straight from their memory)."""
    buffers = [memoryview(part) for part in _parts(obj)]
    while buffers:
        written = _writev(fd, buffers[:512])      # at most IOV_MAX (1024) buffers at a time
        while buffers and written >= buffers[0].nbytes:
            written -= buffers.pop(0).nbytes
        if written:
            buffers[0] = buffers[0][written:]
