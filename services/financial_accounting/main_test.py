from financial_accounting.main import SERVICE
from meridian_testing.contract import check_service_contract


def test_service_contract() -> None:
    check_service_contract(SERVICE, "financial_accounting.main")
