"""The response-log reader: the contract, corrupt lines, time windows, rotation."""

import json
import os
from datetime import UTC, datetime, timedelta

import numpy as np

from monitoring.distributions import tables_from_window
from monitoring.logs import LogWriter, log_files, parse_line, read_window, response_record

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def record(i: int, **change) -> dict:
    r = response_record(T0 + timedelta(minutes=i), f"r{i}", i, 5, "v1", [[1, 2], [3, 0]], [0.7, 0.3],
                        [10, 11, 12], [0, 1, -1], 2.5)
    r.update(change)
    return r


CORRUPT = [
    "not json at all",
    '{"ts": "2025-01-01T00:00:00+00:00", "items": [1, 2',  # truncated
    json.dumps({k: v for k, v in record(0).items() if k != "items"}),  # missing field
    json.dumps(record(0, items=[10, True, 12])),  # a boolean is not an item id
    json.dumps(record(0, items=[10, 11.5, 12])),
    json.dumps(record(0, item_interest=[0, 2, -1])),  # interest index out of range (K = 2)
    json.dumps(record(0, item_interest=[0, 1])),  # one attribution per item
    json.dumps(record(0, interest_probs=[1.0])),  # one probability per interest
    json.dumps(record(0, ts="yesterday")),
    json.dumps(record(0, history_len=-3)),
    json.dumps(record(0, user_id="u7")),
    json.dumps([1, 2, 3]),
    "\x00\xff binary",
]


def test_corrupt_lines_are_skipped_and_counted(tmp_path):
    with LogWriter(tmp_path, max_lines=4) as writer:
        for i in range(6):
            writer.write(record(i))
            if i < len(CORRUPT):
                writer.write_raw(CORRUPT[i])
        for line in CORRUPT[6:]:
            writer.write_raw(line)
    (tmp_path / "empty.jsonl").write_text("\n\n")
    window = read_window(tmp_path)
    assert window.n_requests == 6
    assert window.n_corrupt == len(CORRUPT)
    assert window.n_lines == 6 + len(CORRUPT)
    assert len(window.corrupt_examples) == 5 and all(".jsonl:" in e for e in window.corrupt_examples)
    assert len(log_files(tmp_path)) == 6  # rotation: 4 lines a file, plus the empty file


def test_fields_and_flattening(tmp_path):
    with LogWriter(tmp_path) as writer:
        writer.write(record(0))
        writer.write(record(1, interest_codes=[[4, 4]], interest_probs=[1], items=[7], item_interest=[-1]))
        writer.write(record(2, interest_codes=[], interest_probs=[], items=[], item_interest=[], extra="ok"))
    window = read_window(tmp_path)
    assert window.n_requests == 3 and window.n_corrupt == 0
    assert window.interest_codes == [(1, 2), (3, 0), (4, 4)]
    assert window.interest_offsets.tolist() == [0, 2, 3, 3]
    assert window.item_offsets.tolist() == [0, 3, 4, 4]
    tables = tables_from_window(window)
    assert tables.interests["interest_code"].astype(str).tolist() == ["1-2", "3-0", "4-4"]
    assert tables.requests["top_code"].astype(str).tolist()[:2] == ["1-2", "4-4"]
    assert np.isnan(tables.requests["prob_entropy"].iloc[2])  # no interests: no entropy, no top code
    assert tables.items["via_code"].astype(str).tolist() == ["1-2", "3-0", "u", "u"]


def test_time_window_and_old_files(tmp_path):
    with LogWriter(tmp_path, max_lines=10) as writer:
        for i in range(30):
            writer.write(record(i))
    since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    window = read_window(tmp_path, since, until)
    assert window.n_requests == 10 and window.n_outside == 20
    assert window.ts.min() == np.datetime64("2025-01-01T00:10")
    old = sorted(tmp_path.glob("*.jsonl"))[0]
    os.utime(old, (since.timestamp() - 60, since.timestamp() - 60))
    assert old not in log_files(tmp_path, since)  # last written before the window: never opened


def test_missing_or_empty_folder(tmp_path):
    assert read_window(tmp_path / "nowhere").n_requests == 0
    window = read_window(tmp_path)
    tables = tables_from_window(window)
    assert tables.n_requests == 0 and tables.items.empty and tables.interests.empty


def test_naive_timestamps_are_utc():
    r, ts = parse_line(json.dumps(record(0, ts="2025-01-01T05:00:00")))
    assert ts == datetime(2025, 1, 1, 5, tzinfo=UTC) and r.items == [10, 11, 12]


def test_a_line_still_being_written_is_left_for_the_next_run(tmp_path):
    with LogWriter(tmp_path) as writer:
        writer.write(record(0))
    path = next(tmp_path.glob("*.jsonl"))
    half = json.dumps(record(1))[:40]
    with open(path, "a") as handle:
        handle.write(half)  # no newline yet
    window = read_window(tmp_path)
    assert window.n_requests == 1 and window.n_corrupt == 0
    with open(path, "a") as handle:
        handle.write(json.dumps(record(1))[40:] + "\n")
    assert read_window(tmp_path).n_requests == 2
