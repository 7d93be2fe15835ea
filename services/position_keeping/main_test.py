from meridian_testing.contract import check_service_contract
from position_keeping.main import SERVICE


def test_service_contract() -> None:
    check_service_contract(SERVICE, "position_keeping.main")
