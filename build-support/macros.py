# BUILD-file macros shared by every Meridian service. A service directory's BUILD
# file is just `meridian_service()`: the directory name is the package, and the
# service name is that name with dashes (services/current_account -> current-account).

# Every service image is built from this one Dockerfile, given to docker_image as
# `instructions` (why: deployments/docker/README.md, "One Dockerfile for every service").
_SERVICE_DOCKERFILE = "deployments/docker/Dockerfile"
# Passed through from the environment (tools/image-tags.sh --env prints them). The
# revision and version only name :image's tags; no image holds them (see the
# Dockerfile), so every commit with the same inputs builds the same image.
_TAG_METADATA = ("MERIDIAN_BUILD_VERSION", "MERIDIAN_BUILD_REVISION")
_SOURCE_URL = "MERIDIAN_SOURCE_URL"


def _service_dockerfile():
    try:
        with open(_SERVICE_DOCKERFILE) as dockerfile:
            return dockerfile.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"meridian_service(): {_SERVICE_DOCKERFILE} not found; run Pants from the "
            "repository root (./pants)"
        ) from None


# The chassis module of each backing service's client: the only one importing its
# client library (libs/meridian_chassis/clients).
_CLIENT_MODULE = "libs/meridian_chassis/clients/{need}.py"
_NEEDS = ("database", "redis", "kafka")


def _declared_needs(directory):
    """The `needs: [...]` list of services/<package>/service.yaml, as the catalog writes
    it (libs/meridian_chassis/declaration.py validates the file; this only reads it)."""
    path = f"{directory}/service.yaml"
    with open(path) as declaration:
        lines = [line.split("#")[0].strip() for line in declaration.read().splitlines()]
    listed = [line[len("needs:") :].strip() for line in lines if line.startswith("needs:")]
    if len(listed) != 1 or not (listed[0].startswith("[") and listed[0].endswith("]")):
        raise ValueError(f"{path}: expected one line `needs: [...]`, e.g. needs: [database]")
    needs = [need.strip() for need in listed[0][1:-1].split(",") if need.strip()]
    unknown = [need for need in needs if need not in _NEEDS]
    if unknown:
        raise ValueError(f"{path}: unknown needs {unknown}; choose from {list(_NEEDS)}")
    return needs


def meridian_service():
    package = build_file_dir().name
    # service.yaml declares the service (port, needs); the chassis reads it at start-up,
    # and opens a client of each need, whose module (and library) only these services get.
    resource(name="declaration", source="service.yaml")
    clients = [_CLIENT_MODULE.format(need=need) for need in _declared_needs(build_file_dir())]
    python_sources(name="lib", dependencies=[":declaration", *clients])
    python_tests(name="tests")
    # The whole service in one PEX: `./pants run services/<package>:bin`. In venv mode
    # the PEX builds a virtualenv on its first run and then starts in about 0.1 s, where
    # it would otherwise resolve its wheels again on every start (about 1 s).
    pex_binary(
        name="bin",
        entry_point=f"{package}.main:main",
        dependencies=[":lib"],
        layout="packed",
        execution_mode="venv",
    )
    # What `make run` and Tilt's local mode run: the third-party wheels only, the code
    # read from the working tree (PEX_EXTRA_SYS_PATH in deployments/local/processes.yaml),
    # so that an edit restarts the process in place (MERIDIAN_RELOAD) and nothing is
    # rebuilt unless a BUILD file, the lockfile or the API changes.
    pex_binary(
        name="local",
        entry_point=f"{package}.main:main",
        dependencies=[":lib"],
        include_sources=False,
        layout="packed",
        execution_mode="venv",
    )
    _service_image(package)


def _service_image(package):
    directory = str(build_file_dir())
    service = package.replace("_", "-")
    # The image is built from :bin cut in two: the third-party wheels, which stay cached
    # (by Pants and by the image builder) while only code changes, and the first-party
    # code, quick to rebuild. deployments/docker/Dockerfile makes each its own layer.
    image_pex = dict(entry_point=f"{package}.main:main", dependencies=[":lib"])
    # `pex venv` in the image build needs the tools; the packed layout keeps the wheels
    # as files that don't change unless the lock does.
    pex_binary(
        name="image-deps", include_sources=False, layout="packed", include_tools=True, **image_pex
    )
    # Loose: the sources are copied out as they are, no pex needed to read them.
    pex_binary(name="image-srcs", include_requirements=False, layout="loose", **image_pex)
    dist_dir = directory.replace("/", ".")  # where Pants puts this directory's packages
    instructions = _service_dockerfile()  # read once for the three images below
    srcs_layer = f"{directory}/image-srcs-layer.tar"
    dev_srcs_layer = f"{directory}/image-srcs-layer-dev.tar"
    # The sources layer is made here, not in the image build: Pants caches it, and the
    # image build only unpacks it (the step every source edit repeats). The dev image's
    # copy differs only in who owns the packages.
    adhoc_tool(
        name="image-srcs-layer",
        runnable="deployments/docker:layers-tool",
        args=[
            "srcs",
            f"{dist_dir}/image-srcs.pex",
            "/app",
            srcs_layer,
            f"--dev-out={dev_srcs_layer}",
            f"--service={service}",
        ],
        execution_dependencies=[":image-srcs"],
        output_files=[srcs_layer, dev_srcs_layer],
        workdir="/",
        extra_env_vars=[_SOURCE_URL, "SOURCE_DATE_EPOCH"],
    )
    # What the build stages need, for every image: the classic builder (Docker's
    # without BuildKit) builds every stage before the target one, Podman's only those
    # the target uses. The PEX is named by a build argument, which Pants cannot follow:
    # listed as a dependency.
    build_stage_deps = [":image-deps", "deployments/docker:context"]

    def build_stage_args(target):
        return [
            f"DEPS_PEX={dist_dir}/image-deps.pex",
            # Where Pants writes this target's copy of the Dockerfile.
            f"SERVICE_DOCKERFILE={directory}/Dockerfile.{target}",
        ]

    # Base + third-party deps: rebuilt only when they change. Its tag is a hash of its
    # inputs, so :image always starts from the runtime built from the same lock.
    docker_image(
        name="runtime",
        instructions=instructions,
        target_stage="runtime",
        dependencies=build_stage_deps,
        repository=f"meridian/{service}-runtime",
        image_tags=["{pants.hash}"],
        skip_push=True,
        extra_build_args=build_stage_args("runtime"),
    )
    docker_image(
        name="image",
        instructions=instructions,
        dependencies=[":runtime", ":image-srcs-layer", *build_stage_deps],
        repository=f"meridian/{service}",
        # What CI tests, scans and pushes, tagged with the commit and the version.
        image_tags=[
            "{build_args.MERIDIAN_BUILD_REVISION}",
            "{build_args.MERIDIAN_BUILD_VERSION}",
        ],
        extra_build_args=[
            f"RUNTIME_IMAGE={directory}:runtime",
            f"SRCS_LAYER={srcs_layer}",
            f"MERIDIAN_SERVICE={service}",
            _SOURCE_URL,
            *_TAG_METADATA,
            *build_stage_args("image"),
        ],
    )
    # What local clusters run (Tilt, overlays/dev): the image plus live_update support.
    docker_image(
        name="dev-image",
        instructions=instructions,
        target_stage="dev",
        dependencies=[":runtime", ":image-srcs-layer", *build_stage_deps],
        repository=f"meridian/{service}",
        image_tags=["dev"],
        skip_push=True,
        extra_build_args=[
            f"RUNTIME_IMAGE={directory}:runtime",
            f"SRCS_LAYER={dev_srcs_layer}",
            *build_stage_args("dev-image"),
        ],
    )
