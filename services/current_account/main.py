"""Entry point of the current-account service."""

from meridian_chassis import ServiceSpec, run

SERVICE = ServiceSpec(
    name="current-account", dependencies=frozenset({"database", "redis", "kafka"})
)


def main() -> None:
    run(SERVICE)


if __name__ == "__main__":
    main()
