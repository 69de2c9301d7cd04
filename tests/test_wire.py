"""The wire format carries numbers only: nothing a student's process sends can run code."""
import pickle

import numpy as np
import pytest

from autograder import wire


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
                   b'{"__nd__": 3200, "dtype": "<f8", "shape": [400]}'):
        forged = len(header).to_bytes(4, "big") + header + good[-32:]
        with pytest.raises(wire.WireError):
            wire.decode(forged)
    with pytest.raises(wire.WireError):
        wire.decode(pickle.dumps(np.zeros(3)))


def test_oversized_messages_are_refused(tmp_path):
    import os
    r, w = os.pipe()
    os.write(w, (wire.MAX_MESSAGE_BYTES + 1).to_bytes(8, "big"))
    with pytest.raises(wire.WireError):
        wire.receive(r)
    os.close(r), os.close(w)
