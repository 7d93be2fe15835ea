import pytest

from meridian_chassis.clients import Clients, UndeclaredDependencyError
from meridian_chassis.clients.database import DatabaseClient
from meridian_chassis.clients.kafka import KafkaClient
from meridian_chassis.config import load_settings
from meridian_chassis.launch import CONFIG_ERROR_EXIT_CODE
from meridian_testing.process import python_command, start_process
from meridian_testing.servers import free_port

DATABASE_ONLY = frozenset({"database"})
ENV = {"DATABASE_URL": "postgresql://ledger@127.0.0.1:1/ledger"}


def test_a_declared_client_is_made_once_and_shared_with_readiness() -> None:
    clients = Clients("ledger-audit", load_settings(ENV, DATABASE_ONLY), DATABASE_ONLY)
    database = clients.get(DatabaseClient)
    assert clients.get(DatabaseClient) is database
    (check,) = clients.load()
    assert (check.name, check.critical) == ("database", True)
    assert check.probe == database.check


def test_an_optional_need_makes_a_check_that_is_not_critical() -> None:
    needs = frozenset({"database", "kafka"})
    env = {**ENV, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    clients = Clients("ledger-audit", load_settings(env, needs), needs, frozenset({"kafka"}))
    assert {check.name: check.critical for check in clients.load()} == {
        "database": True,
        "kafka": False,
    }


def test_asking_for_an_undeclared_client_names_the_declaration_to_change() -> None:
    clients = Clients("ledger-audit", load_settings(ENV, DATABASE_ONLY), DATABASE_ONLY)
    with pytest.raises(UndeclaredDependencyError) as error:
        clients.get(KafkaClient)
    assert str(error.value) == (
        "ledger-audit asks for its kafka client (KafkaClient), but "
        "services/ledger_audit/service.yaml does not declare it: add kafka to its `needs` "
        "(now [database]) and run `make services`"
    )


UNDECLARED_SERVICE = """
from meridian_chassis import ServiceSpec, run
from meridian_chassis.clients.kafka import KafkaClient

def routes(clients):
    clients.get(KafkaClient)
    return []

run(ServiceSpec("ledger-audit", frozenset({"database"}), routes))
"""


def test_a_service_asking_for_an_undeclared_client_exits_before_serving() -> None:
    process = start_process(python_command(UNDECLARED_SERVICE), {**ENV, "PORT": str(free_port())})
    out, err = process.communicate(timeout=30)
    assert process.returncode == CONFIG_ERROR_EXIT_CODE, err
    assert "ledger-audit: ledger-audit asks for its kafka client (KafkaClient)" in err
    assert "Traceback" not in err
    assert "starting" not in out
