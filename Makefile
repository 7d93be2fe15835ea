# Meridian developer tasks. `make` lists them. Pants does the building; these are
# the short names for what engineers and CI run every day.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PANTS := ./pants
# What every local process runs (deployments/local/processes.yaml names it too), the stack's
# own tools read from the tree.
STACK_PEX := dist/deployments.local/stack.pex
# Affected-only runs compare against this ref (override: make test-changed BASE=HEAD~3).
BASE ?= $(shell git merge-base origin/main HEAD 2>/dev/null || echo HEAD~1)
# What `make ci-rehearsal` rehearses (.github/CI.md, "Rehearsal").
REHEARSAL_EVENTS ?= pull_request push
# The release tooling (tools/release) needs Python 3.11+.
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: help
help: ## List the tasks
	@# Colour only on a terminal: piped or redirected, the list is plain text.
	@if [[ -t 1 && -z "$${NO_COLOR:-}" ]]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	  awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*?## "} /^[a-z-]+:.*?## / {printf "  %s%-17s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

.PHONY: bootstrap
bootstrap: ## Install host prerequisites and Pants (idempotent)
	tools/prerequisites.sh
	$(PANTS) --version

.PHONY: build
build: bootstrap ## Build what `make run` runs into dist/: the stack's third-party wheels (one PEX) and the API's generated code
	$(PANTS) package deployments/local:stack
	@# The stack's virtualenv is made (on the PEX's first run) and compiled while the API's
	@# code is generated.
	PEX_EXTRA_SYS_PATH=libs python3 $(STACK_PEX) -m meridian_devstack.warm & venv=$$!; \
	  $(PANTS) export-codegen api/proto:: && wait $$venv

.PHONY: run
run: ## Run the whole system locally (PostgreSQL, Redis, Kafka, services); Ctrl-C stops it
	@# Before installing or building anything: a taken port fails now, naming its holder.
	@python3 libs/meridian_devstack/ports.py deployments/local/processes.yaml
	@$(MAKE) --no-print-directory build
	set -a; eval "$$(tools/image-tags.sh --env)"; set +a; \
	  PEX_EXTRA_SYS_PATH=libs exec python3 $(STACK_PEX) -m meridian_devstack.main deployments/local/processes.yaml $(RUN_ARGS)

.PHONY: service
service: bootstrap ## Add a service: make service NAME=payment-order [NEEDS=database,redis,kafka] [OPTIONAL=redis] [PORT=8100]
	@[[ -n "$(NAME)" ]] || { echo "usage: make service NAME=<name-in-dashes> [NEEDS=database,redis,kafka] [OPTIONAL=<needs it serves without>] [PORT=<host port>]" >&2; exit 2; }
	$(PANTS) run libs/meridian_catalog:catalog -- new "$(NAME)" $(if $(PORT),--port "$(PORT)") --needs "$(NEEDS)" --optional "$(OPTIONAL)"

.PHONY: services
services: bootstrap ## Refresh what derives from services/*/service.yaml (after editing or deleting a service)
	$(PANTS) run libs/meridian_catalog:catalog -- generate

.PHONY: docker
docker: bootstrap ## Build every service image (Docker + BuildKit; MERIDIAN_ENGINE=podman for Podman), lint, SBOMs
	tools/images/build.sh

.PHONY: test-images
test-images: ## Run each image: health, injected /version SHA, no commit metadata, uid 65532, no shell, Tilt's push; two builds in empty stores give one digest
	tools/images/test.sh

.PHONY: bench-images
bench-images: ## Print image sizes, one-line-change rebuild time and layer digest stability
	bench/images/bench.sh

.PHONY: bench-pr
bench-pr: bootstrap ## Time a one-service pull request's CI phases (wall, CPU, load) in a scratch clone
	$(PYTHON) -m bench.pr

.PHONY: bench-cold-start
bench-cold-start: ## Time a fresh clone with empty caches to `make run` ready, step by step
	$(PYTHON) -m bench.coldstart $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: bootstrap ## Measure build, tests, manifests, Tilt and `make run` at today's services and at 30
	$(PANTS) run bench/scale:bench

.PHONY: bench-health
bench-health: bootstrap ## Load the health endpoints of a service on real servers: req/s, p99, connections, start-up time
	$(PANTS) run bench/health:bench -- $(BENCH_ARGS)

.PHONY: bench-dev-loop
bench-dev-loop: bootstrap ## Time the inner loop's steps, median of 3 (BENCH_ARGS=--local: local processes, no cluster)
	@# Packaged, then run outside Pants: the benchmark runs Pants in its own clone for
	@# minutes, and this checkout's Pants stays free meanwhile.
	$(PANTS) package bench/devloop:bench
	python3 dist/bench.devloop/bench.pex $(BENCH_ARGS)

.PHONY: deploy-local
deploy-local: ## Run the stack on a local cluster with Tilt; ALLOW_CONTEXT=NAME for a context Tilt does not take for local
	@command -v tilt >/dev/null || { echo "tilt is not installed: run tools/install-dev-tools.sh" >&2; exit 1; }
	tilt up$(if $(ALLOW_CONTEXT), -- --allow-context=$(ALLOW_CONTEXT))

.PHONY: test
test: bootstrap ## Run every test (unit, integration with real servers, platform checks); hermetic; prints the total
	rm -rf dist/test/reports
	status=0; $(PANTS) test --test-report :: || status=$$?; \
	  $(PYTHON) -m tools.readme --junit dist/test/reports/readme-commands.xml || status=$$?; \
	  python3 tools/testreport/summary.py dist/test/reports || { [[ $$status != 0 ]] || status=1; }; \
	  exit $$status

.PHONY: test-readme
test-readme: ## Try each README command in a fresh clone of HEAD (fast safe forms; part of make test)
	$(PYTHON) -m tools.readme $(README_ARGS)

.PHONY: audit
audit: ## Fail on known advisories with a fix in every lock and base package; report what is behind (fails closed)
	$(PYTHON) -m tools.audit $(AUDIT_ARGS)

.PHONY: test-changed
test-changed: bootstrap ## Test what changed since BASE (default: merge base with origin/main) and its dependents; everything when a global input changed
	@# tools/release/affected.py: pants.toml, lockfiles, the Pants bootstrap, BUILD macros or any file
	@# no Pants target owns make every target affected, as in CI.
	@# Nothing changed (a fresh clone: the merge base is HEAD): it says so and stops.
	args="$$($(PYTHON) -m tools.release affected --base "$(BASE)" --pants-args)"; \
	  if [[ -n "$$args" ]]; then $(PANTS) $$args test; fi

.PHONY: validate
validate: bootstrap ## Validate manifests, Tiltfile and workflows (schemas, policies, scanners)
	$(PANTS) test deployments/tests::

.PHONY: ci-rehearsal
ci-rehearsal: bootstrap ## Run ci.yml's jobs under act for a one-service pull request and a push to main (REHEARSAL_EVENTS, REHEARSAL_ARGS="--jobs lint,test")
	$(PANTS) package tools/ci_rehearsal:rehearse
	for event in $(REHEARSAL_EVENTS); do \
	  $(PYTHON) dist/tools.ci_rehearsal/rehearse.pex --event "$$event" $(REHEARSAL_ARGS) || exit 1; \
	done

.PHONY: secrets
secrets: ## Scan every commit for secrets with gitleaks (ci.yml's `secrets` job)
	bin="$$(tools/images/tools.sh 3rdparty/tools/gitleaks.txt)"; \
	  "$$bin/gitleaks" git --redact --no-banner --exit-code 1 .

.PHONY: ci-cache-demo
ci-cache-demo: bootstrap ## Prove the remote cache: test twice against a local BuildGrid, print hits and times
	$(PYTHON) -m bench.cache_demo

.PHONY: lint
lint: bootstrap ## Lint (ruff, black --check, shellcheck), check BUILD files are complete and tidy and that affected-only builds see every file
	$(PANTS) lint ::
	tools/images/shellcheck.sh
	$(PANTS) tailor --check update-build-files --check ::
	$(PYTHON) -m tools.release affected-coverage

.PHONY: fmt
fmt: bootstrap ## Format and auto-fix (black, ruff --fix)
	$(PANTS) fix ::

.PHONY: check
check: bootstrap ## Type-check with strict mypy
	$(PANTS) check ::

.PHONY: proto
proto: bootstrap ## Generate Python code from api/proto into dist/codegen
	$(PANTS) export-codegen api/proto::

.PHONY: lock
lock: bootstrap ## Re-resolve 3rdparty/python/requirements.txt into default.lock
	$(PANTS) generate-lockfiles

.PHONY: tool-locks
tool-locks: ## Re-resolve the hash-pinned tool locks (Pants bootstrap, uv, pre-commit, pip-audit, remote cache) with uv
	3rdparty/lock.sh

.PHONY: hooks
hooks: bootstrap ## Install the git pre-commit hooks
	tools/install-hooks.sh

.PHONY: stop-pantsd
stop-pantsd: ## Stop this checkout's Pants daemon (the next ./pants starts a fresh one)
	@pid_file="$$(ls .pids/*/pantsd/pid 2>/dev/null | head -1 || true)"; \
	  if [[ -n "$$pid_file" ]] && kill "$$(cat "$$pid_file")" 2>/dev/null; then echo "stopped pantsd $$(cat "$$pid_file")"; \
	  else echo "no pantsd runs for this checkout"; fi

.PHONY: clean
clean: stop-pantsd ## Stop this checkout's pantsd; remove dist/, .local/ (stack data), .pids/, .pants.d/ (keeps Pants' caches)
	if [ -L .local/postgres ]; then rm -rf "$$(readlink .local/postgres)"; fi
	rm -rf dist .local .pids .pants.d
