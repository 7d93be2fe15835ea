from current_account.main import SERVICE
from meridian_testing.contract import check_service_contract


def test_service_contract() -> None:
    check_service_contract(SERVICE, "current_account.main")
