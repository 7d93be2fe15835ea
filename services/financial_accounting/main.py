"""Entry point of the financial-accounting service."""

from meridian_chassis import declared_service, run

SERVICE = declared_service("financial_accounting")


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
