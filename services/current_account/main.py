"""Entry point of the current-account service."""

from meridian_chassis import declared_service, run

SERVICE = declared_service("current_account")


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
