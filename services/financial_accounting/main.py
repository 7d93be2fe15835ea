"""Entry point of the financial-accounting service."""

from meridian_chassis import ServiceSpec, run

SERVICE = ServiceSpec(name="financial-accounting", dependencies=frozenset({"database", "kafka"}))


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
