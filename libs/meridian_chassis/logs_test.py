import json
import logging

from meridian_chassis.logs import JsonFormatter


def test_one_json_object_per_line_with_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "meridian.access", "levelname": "INFO", "msg": "request", "status": 201}
    )
    line = JsonFormatter("current-account").format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["service"] == "current-account"
    assert entry["message"] == "request"
    assert entry["status"] == 201
    assert entry["level"] == "INFO"
