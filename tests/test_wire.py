"""The wire format carries numbers only: nothing a student's process sends can run code."""
import os
import pickle
import threading

import numpy as np
import pytest

from autograder.process import channel, wire


def body(obj):
    return wire.encode(obj)[8:]


def test_round_trip_of_arrays_scalars_lists_and_dicts():
    value = {"a": np.arange(6.0).reshape(2, 3), "b": [1, 2.5, None, True, "text"],
             "c": np.float32(1.5), "d": np.array(3), "e": {"nested": np.zeros((0, 4))}}
    back = wire.decode(body(value))
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.float64
    assert back["b"] == [1, 2.5, None, True, "text"]
    assert back["c"].dtype == np.float32 and back["c"] == 1.5
    assert back["e"]["nested"].shape == (0, 4)
    back["a"][0, 0] = 99  # decoded arrays are the grader's own, writable copies


def test_objects_and_object_arrays_are_refused():
    for bad in (object(), np.array([object()]), {1: 2}, {"__nd__": 1}, lambda: 0):
        with pytest.raises(wire.WireError):
            wire.encode(bad)


def test_forged_headers_are_refused():
    good = body(np.zeros(4))
    for header in (b'{"__nd__": 32, "dtype": "|O", "shape": [4]}',
                   b'{"__nd__": 64, "dtype": "<f8", "shape": [4]}',
                   b'{"__nd__": 32, "dtype": "<f8", "shape": [-4]}',
                   b'{"__nd__": 3200, "dtype": "<f8", "shape": [400]}',
                   b'{"__nd__": 0, "dtype": "<f8", "shape": [4611686018427387904, 4]}',   # int64 wraps to 0
                   b'{"__nd__": 0, "dtype": "<f8", "shape": [0, 9223372036854775808]}',
                   b'{"__nd__": 8, "dtype": "<f8", "shape": [' + b", ".join([b"1"] * 40) + b']}',
                   b'{"__nd__": 8, "dtype": "<f8", "shape": [Infinity]}',
                   b'{"__nd__": 8, "dtype": "S99999999999999", "shape": [1]}'):
        forged = len(header).to_bytes(4, "big") + header + good[-32:]
        with pytest.raises(wire.WireError):
            wire.decode(forged)
    with pytest.raises(wire.WireError):
        wire.decode(pickle.dumps(np.zeros(3)))


def test_oversized_messages_are_refused():
    r, w = os.pipe()
    os.write(w, (1001).to_bytes(8, "big") + bytes(1001))
    with pytest.raises(channel.ChannelClosed, match="over the limit"):
        channel.Reader(r, 1000).fill()
    os.close(r), os.close(w)


def test_an_announced_size_costs_memory_only_as_it_arrives():
    """A reply that announces 200 MB and sends 3 MB: the reader holds at most twice what came."""
    r, w = os.pipe()
    reader = channel.Reader(r, wire.MAX_MESSAGE_BYTES)
    os.write(w, (200 << 20).to_bytes(8, "big"))
    assert reader.fill() and len(reader.body) == channel.READ_CHUNK
    sent = 0
    while sent < 3 << 20:
        sent += os.write(w, bytes(1 << 16))
        assert reader.fill() and reader.message(wire.decode) is None
    assert reader.got == sent and len(reader.body) <= 2 * sent
    os.close(r), os.close(w)


def test_a_message_arriving_in_pieces_is_read_whole_and_alone():
    """The grader's reader: a message split anywhere, then the next one behind it."""
    first, second = wire.encode({"ok": True, "result": np.arange(5000.0)}), wire.encode({"ok": False})
    r, w = os.pipe()
    reader = channel.Reader(r, wire.MAX_MESSAGE_BYTES)
    for piece in (first[:3], first[3:20], first[20:-1]):
        os.write(w, piece)
        assert reader.fill() and reader.message(wire.decode) is None
    os.write(w, first[-1:] + second)
    assert reader.fill()
    got = reader.message(wire.decode)
    assert np.array_equal(got["result"], np.arange(5000.0)) and reader.message(wire.decode) is None
    got["result"][0] = 1.0      # a view of the reader's own buffer, writable
    assert reader.fill() and reader.message(wire.decode) == {"ok": False}
    os.close(w)
    assert reader.fill() is False       # end of file
    os.close(r)


def test_send_writes_what_encode_makes_in_pieces_a_pipe_can_take():
    """wire.send (the worker's) writes arrays from their own memory, through a full pipe."""
    value = {"ok": True, "result": [np.arange(300000.0).reshape(600, 500)[:, ::2], np.float32(2), np.zeros(0)]}
    r, w = os.pipe()
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 1 << 16), b"")))
    reader.start()
    wire.send(w, value)
    os.close(w)
    reader.join()
    os.close(r)
    assert b"".join(chunks) == wire.encode(value)
    back = wire.decode(b"".join(chunks)[8:])["result"]
    assert np.array_equal(back[0], value["result"][0]) and back[1] == 2 and back[2].shape == (0,)
