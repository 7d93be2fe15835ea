#!/usr/bin/env bash
# Deploys every Meridian service to one environment, waits for the rollouts, checks
# /health/ready through each Service, and on any failure rolls back every Deployment
# that this run changed, then exits non-zero.
#
# Usage (from the repository root, kubectl's current context = the target cluster):
#   .github/scripts/deploy.sh ENVIRONMENT IMAGE_REFS_FILE
# IMAGE_REFS_FILE holds `service=ghcr.io/<owner>/meridian/<service>:<tag>@sha256:<digest>`
# lines (build.yml's image-refs artifact). Needs kubectl, kustomize and curl.
set -eEuo pipefail

environment="$1"
refs_file="$2"
overlay="deployments/k8s/overlays/${environment}"
rollout_timeout="${ROLLOUT_TIMEOUT:-300s}"
[[ -f "${overlay}/kustomization.yaml" ]] || { echo "::error::no overlay at ${overlay}" >&2; exit 2; }

# Every services/*/ directory with a BUILD file is a service; its name uses dashes.
services=()
for build_file in services/*/BUILD; do
  package="$(basename "$(dirname "${build_file}")")"
  services+=("${package//_/-}")
done

for service in "${services[@]}"; do
  ref="$(sed -n "s|^${service}=||p" "${refs_file}")"
  [[ -n "${ref}" ]] || { echo "::error::${refs_file} has no image for ${service}" >&2; exit 1; }
  (cd "${overlay}" && kustomize edit set image "meridian/${service}=${ref}")
done
echo "Images to deploy:"
kubectl kustomize "${overlay}" | grep -E '^ +image: ' | sort -u

deployments() {  # namespace/name of each of the overlay's Deployments that exists
  kubectl get -k "${overlay}" --ignore-not-found --no-headers \
    -o custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name |
    awk '$1 == "Deployment" {print $2 "/" $3}'
}
revision() {  # current revision of namespace/name
  kubectl -n "${1%/*}" get deployment "${1#*/}" \
    -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}'
}

# Revisions before this run: a rollback returns exactly there, and leaves alone the
# Deployments this run did not change (a plain `undo` would step them back too far).
existing="$(deployments)"
declare -A before=()
while read -r deployment; do
  [[ -z "${deployment}" ]] || before["${deployment}"]="$(revision "${deployment}")"
done <<<"${existing}"

rollback() {
  trap - ERR
  set +e
  echo "::error::deploy to ${environment} failed; rolling back"
  while read -r deployment; do
    local previous="${before[${deployment}]:-}" current
    current="$(revision "${deployment}")"
    if [[ -z "${previous}" ]]; then
      echo "::warning::${deployment} is new in this deploy; nothing to roll back to"
    elif [[ "${current}" != "${previous}" ]]; then
      kubectl -n "${deployment%/*}" rollout undo "deployment/${deployment#*/}" --to-revision="${previous}"
      kubectl -n "${deployment%/*}" rollout status "deployment/${deployment#*/}" --timeout="${rollout_timeout}"
    fi
  done < <(deployments)
  exit 1
}
trap rollback ERR

kubectl apply -k "${overlay}"
applied_list="$(deployments)"
mapfile -t applied <<<"${applied_list}"
for deployment in "${applied[@]}"; do
  kubectl -n "${deployment%/*}" rollout status "deployment/${deployment#*/}" --timeout="${rollout_timeout}"
done

# Port-forwarding goes through the API server, so it works under default-deny network
# policies and needs no extra image in the cluster.
ready() {  # namespace service
  local namespace="$1" service="$2" port log pid local_port="" status=0
  port="$(kubectl -n "${namespace}" get service "${service}" -o jsonpath='{.spec.ports[0].port}')"
  log="$(mktemp)"
  kubectl -n "${namespace}" port-forward "service/${service}" ":${port}" >"${log}" 2>&1 &
  pid=$!
  for _ in $(seq 30); do
    local_port="$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "${log}" | head -n 1)"
    [[ -n "${local_port}" ]] && break
    sleep 1
  done
  if [[ -z "${local_port}" ]]; then
    cat "${log}"
    status=1
  else
    curl -fsS --max-time 10 --retry 5 --retry-delay 2 --retry-all-errors \
      "http://127.0.0.1:${local_port}/health/ready" || status=1
    echo
  fi
  kill "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
  return "${status}"
}

for service in "${services[@]}"; do
  deployment="$(printf '%s\n' "${applied[@]}" | grep -m1 "/${service}$")"
  echo "Smoke check: ${deployment} /health/ready"
  ready "${deployment%/*}" "${service}"
done
echo "Deployed to ${environment}."
