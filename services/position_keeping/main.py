"""Entry point of the position-keeping service."""

from meridian_chassis import declared_service, run

SERVICE = declared_service("position_keeping")


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
