# BUILD-file macros shared by every Meridian service. A service directory's BUILD
# file is just `meridian_service()`: the directory name is the package, and the
# service name is that name with dashes (services/current_account -> current-account).


def meridian_service(**pex_overrides):
    package = build_file_dir().name
    python_sources(name="lib")
    python_tests(name="tests")
    pex_binary(
        name="bin",
        entry_point=f"{package}.main:main",
        dependencies=[":lib"],
        layout="packed",
        include_tools=True,
        **pex_overrides,
    )
