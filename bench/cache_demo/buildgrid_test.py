import os
import re
import sys
from pathlib import Path

import pytest

from bench.cache_demo.buildgrid import (
    PORT_VARIABLE,
    STORAGE_VARIABLE,
    find_python,
    pip_environment,
    server_environment,
    venv_key,
)
from bench.cache_demo.errors import DemoError

CONFIG = Path("bench/cache_demo/server/buildgrid.conf")


def test_the_server_config_reads_the_port_and_storage_the_demo_exports() -> None:
    config = CONFIG.read_text()
    expanded = set(re.findall(r"\$\{([A-Z_]+)\}", config))
    assert expanded == {PORT_VARIABLE, STORAGE_VARIABLE}
    assert f'address: !expand-vars "127.0.0.1:${{{PORT_VARIABLE}}}"' in config
    env = server_environment({"PATH": "/usr/bin"}, 40123, Path("/work/demo/cas"))
    assert env == {"PATH": "/usr/bin", PORT_VARIABLE: "40123", STORAGE_VARIABLE: "/work/demo/cas"}


def test_the_venv_is_named_after_the_pins_and_the_interpreter() -> None:
    pins = b"buildgrid==0.4.4 --hash=sha256:aa\n"
    key = venv_key(pins, b"Python 3.11.2 (main) [GCC 12.2.0]\n")
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == venv_key(pins, b"Python 3.11.2 (main) [GCC 12.2.0]\n")
    assert key != venv_key(pins, b"Python 3.11.9 (main) [GCC 12.2.0]\n")
    assert key != venv_key(pins.replace(b"aa", b"ab"), b"Python 3.11.2 (main) [GCC 12.2.0]\n")


def test_pip_sees_none_of_the_machines_pip_config() -> None:
    env = pip_environment(
        {
            "PATH": "/usr/bin",
            "PIP_CONSTRAINT": "/etc/pip/constraints.txt",
            "PIP_FIND_LINKS": "/srv/wheels",
            "PIP_EXTRA_INDEX_URL": "https://example.invalid/simple",
            "PIP_CERT": "/etc/ssl/proxy.pem",
        }
    )
    assert env == {
        "PATH": "/usr/bin",
        "PIP_CERT": "/etc/ssl/proxy.pem",
        "PIP_CONFIG_FILE": os.devnull,
    }


def test_the_first_python_3_11_is_chosen(tmp_path: Path) -> None:
    assert sys.version_info[:2] == (3, 11)
    missing = str(tmp_path / "python3.11")
    assert find_python([missing, sys.executable]) == sys.executable


def test_no_python_3_11_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match=r"CPython 3\.11 is needed for BuildGrid"):
        find_python([str(tmp_path / "python3.11"), "/bin/true", "/bin/echo"])
