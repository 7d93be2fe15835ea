"""Entry point of the position-keeping service."""

from meridian_chassis import ServiceSpec, run

SERVICE = ServiceSpec(
    name="position-keeping", dependencies=frozenset({"database", "redis", "kafka"})
)


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
