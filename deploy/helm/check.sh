#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/loupe offline, with no cluster:
#   1. helm lint --strict with every ci/*-values.yaml scenario;
#   2. helm template of every scenario, each document decoded strictly against the real
#      Kubernetes API types (k8s.io/api via client-go's scheme; deploy/helm/validate) plus
#      reference and hardening checks; the validator first proves on known-bad fixtures that it
#      rejects them;
#   3. assertions on the value switches (GPU, existingSecret, bundled vs external, ...).
# helm (go install from the Go module proxy) and the validator are built once into
# ${LOUPE_CACHE_DIR:-~/.cache/loupe}/go-bin and reused while their sources are unchanged.
# Exit status 0 only when everything passed.
set -euo pipefail

HELM_VERSION=v3.22.0
KUBE_VERSION=1.37.0 # the version of the k8s.io/api types in validate/go.mod
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART=$HERE/loupe
CACHE=${LOUPE_CACHE_DIR:-$HOME/.cache/loupe}
BIN=$CACHE/go-bin
HELM=$BIN/helm
VALIDATE=$BIN/loupe-k8s-validate
# Keep helm's own config and cache out of the user's home folders.
export HELM_CACHE_HOME=$CACHE/helm/cache HELM_CONFIG_HOME=$CACHE/helm/config HELM_DATA_HOME=$CACHE/helm/data
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN"

T0=$(date +%s.%N)
declare -a SUMMARY=()
FAILED=0
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
step() { printf '\n== %s\n' "$*"; }
pass() { SUMMARY+=("PASS  $*"); printf '  ok   %s\n' "$*"; }
fail() { SUMMARY+=("FAIL  $*"); printf '  FAIL %s\n' "$*"; FAILED=1; }

# ---- tools ---------------------------------------------------------------------------------------
step "tools"
t=$(date +%s.%N)
if [[ -x $HELM && "$(cat "$HELM.version" 2>/dev/null)" == "$HELM_VERSION" ]]; then
  echo "  helm $HELM_VERSION: cached"
else
  command -v go >/dev/null || { echo "go is needed to build helm" >&2; exit 2; }
  echo "  helm $HELM_VERSION: building with go install (first run only, about a minute)"
  GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$HELM.version"
fi
src_hash=$(cd "$HERE/validate" && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)
if [[ -x $VALIDATE && "$(cat "$VALIDATE.sha256" 2>/dev/null)" == "$src_hash" ]]; then
  echo "  validator: cached"
else
  command -v go >/dev/null || { echo "go is needed to build the validator" >&2; exit 2; }
  echo "  validator: building (k8s.io/api, client-go from validate/go.mod)"
  (cd "$HERE/validate" && go build -o "$VALIDATE" .)
  echo "$src_hash" > "$VALIDATE.sha256"
fi
SUMMARY+=("      tools ready in $(elapsed "$t")")

# The validator must reject known-bad manifests (expected error counts), or its "ok" means nothing.
step "validator self-test (known-bad fixtures)"
for fixture in bad-schema:3 bad-references:12; do
  name=${fixture%%:*} want=${fixture##*:}
  out=$("$VALIDATE" "$HERE/validate/testdata/$name.yaml" || true)
  if grep -q "^FAIL $name.yaml: $want error(s)" <<<"$out"; then
    pass "validator rejects testdata/$name.yaml ($want errors)"
  else
    fail "validator on testdata/$name.yaml: expected $want errors, got: $(head -1 <<<"$out")"
    echo "$out"
  fi
done

# ---- lint and render every scenario -----------------------------------------------------------
render() { # render OUT [helm template args...]
  local out=$1; shift
  "$HELM" template loupe "$CHART" --namespace loupe --kube-version "$KUBE_VERSION" "$@" > "$out"
}
step "helm lint --strict and helm template, per ci/*-values.yaml"
t=$(date +%s.%N)
shopt -s nullglob
scenarios=("$CHART"/ci/*-values.yaml)
[[ ${#scenarios[@]} -gt 0 ]] || { fail "no ci/*-values.yaml scenarios"; }
rendered=()
for values in "${scenarios[@]}"; do
  name=$(basename "$values" -values.yaml)
  if lint_out=$("$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" -f "$values" 2>&1); then
    pass "lint $name"
  else
    fail "lint $name"; echo "$lint_out"
  fi
  if render "$WORK/$name.yaml" -f "$values" 2>"$WORK/$name.err"; then
    rendered+=("$WORK/$name.yaml")
    pass "template $name ($(grep -c '^kind:' "$WORK/$name.yaml") objects)"
  else
    fail "template $name"; cat "$WORK/$name.err"
  fi
done
SUMMARY+=("      lint + template in $(elapsed "$t")")

step "validate rendered manifests against the Kubernetes API types (offline)"
if [[ ${#rendered[@]} -gt 0 ]]; then
  if "$VALIDATE" "${rendered[@]}"; then
    pass "API types, references and hardening: ${#rendered[@]} scenario(s)"
  else
    fail "API types, references and hardening (see above)"
  fi
fi

# ---- value switches -----------------------------------------------------------------------------
step "value switches"
# doc KIND NAME FILE: the rendered document of that kind and name.
doc() { awk -v k="\nkind: $1\n" -v n="\n  name: $2\n" 'BEGIN{RS="\n---\n"} index($0, k) && index($0, n) {print}' "$3"; }
count() { grep -c -- "$1" "$2" || true; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
eq() { [[ "$1" == "$2" ]] || { echo "    expected '$2', got '$1'"; return 1; }; }
D=$WORK/default.yaml G=$WORK/gpu.yaml X=$WORK/external-infra.yaml M=$WORK/minimal.yaml
for f in "$D" "$G" "$X" "$M"; do [[ -s $f ]] || fail "scenario $(basename "$f") was not rendered"; done

check "GPU: no nvidia.com/gpu anywhere by default" eq "$(count 'nvidia.com/gpu' "$D")" 0
check "GPU: the trainer's limits request nvidia.com/gpu: 1 when enabled" \
  grep -q '^ *nvidia.com/gpu: 1$' <(doc Deployment loupe-training "$G")
check "GPU: only the trainer requests it" eq "$(count '^ *nvidia.com/gpu: 1$' "$G")" 1

render "$WORK/existing.yaml" --set postgresql.existingSecret=pg-app,postgresql.existingSecretKey=uri \
  --set s3.existingSecret=s3-keys
# dsn_ref KIND NAME: the secretKeyRef of LOUPE_POSTGRES_DSN, as "name/key".
dsn_ref() {
  doc "$1" "$2" "$WORK/existing.yaml" | grep -A4 'name: LOUPE_POSTGRES_DSN' \
    | awk '/^ *name: /&&!/LOUPE/{n=$2} /^ *key: /{k=$2} END{print n "/" k}'
}
check "existingSecret: metadata reads the DSN from it" eq "$(dsn_ref Deployment loupe-metadata)" pg-app/uri
check "existingSecret: the migration Job reads the DSN from it" eq "$(dsn_ref Job loupe-migrations)" pg-app/uri
check "existingSecret: storage reads the S3 keys from it" \
  eq "$(doc Deployment loupe-storage "$WORK/existing.yaml" | count 'name: s3-keys' /dev/stdin)" 2
check "existingSecret: the chart makes no DSN or S3 Secret of its own" \
  eq "$(doc Secret loupe-postgresql "$WORK/existing.yaml")$(doc Secret loupe-s3 "$WORK/existing.yaml")$(doc Secret loupe-migrations "$WORK/existing.yaml")" ""

# internal_ref FILE NAME: the secretKeyRef of a Deployment's LOUPE_INTERNAL_SECRET, as "name/key".
internal_ref() {
  doc Deployment "$2" "$1" | grep -A4 'name: LOUPE_INTERNAL_SECRET' \
    | awk '/^ *name: /&&!/LOUPE/{n=$2} /^ *key: /{k=$2} END{print n "/" k}'
}
render "$WORK/internal.yaml" --set internalAuth.existingSecret=loupe-internal-ext,internalAuth.existingSecretKey=s
check "internal auth: every Loupe service reads LOUPE_INTERNAL_SECRET from the chart's Secret" \
  eq "$(for c in gateway metadata storage training prediction; do internal_ref "$D" "loupe-$c"; done | sort -u)" \
  loupe-internal/internal-secret
check "internal auth: the chart's Secret holds a generated internal-secret" \
  grep -q '^  internal-secret: ' <(doc Secret loupe-internal "$D")
check "internal auth: existingSecret is read by every Loupe service, no Secret of the chart's" \
  eq "$(for c in gateway metadata storage training prediction; do internal_ref "$WORK/internal.yaml" "loupe-$c"; done | sort -u)$(doc Secret loupe-internal "$WORK/internal.yaml")" \
  loupe-internal-ext/s
check "internal auth: TorchServe never gets the secret" \
  eq "$(doc Deployment loupe-torchserve "$D" | count LOUPE_INTERNAL_SECRET /dev/stdin)" 0
check "TorchServe: no model registration over the management API" \
  grep -q '^ *enable_model_api=false$' <(doc ConfigMap loupe-torchserve "$D")
check "TorchServe: inference and management ports only from the prediction pods" \
  eq "$(doc NetworkPolicy loupe-torchserve "$D" | sed -n '/^  ingress:/,$p' | grep -E 'port: |component: ' | tr -d ' ' | tr '\n' ' ')" \
  "-port:inference -port:management app.kubernetes.io/component:prediction -port:metrics "
check "bundled: PostgreSQL, MinIO and Kafka StatefulSets by default" eq "$(count '^kind: StatefulSet' "$D")" 3
check "external: no bundled StatefulSet" eq "$(count '^kind: StatefulSet' "$X")" 0
check "external: no bundled infra NetworkPolicy or Service" \
  eq "$(grep -cE 'name: loupe-(postgresql|minio|kafka)$' "$X" || true)" 0
check "external: services get the external endpoints" \
  grep -q 'loupe-kafka-bootstrap.kafka.svc:9092' <(doc Deployment loupe-training "$X")
check "hooks: migrations run post-install with bundled PostgreSQL" \
  grep -q 'helm.sh/hook: post-install,pre-upgrade' <(doc Job loupe-migrations "$D")
check "hooks: migrations run pre-install with external PostgreSQL" \
  grep -q 'helm.sh/hook: pre-install,pre-upgrade' <(doc Job loupe-migrations "$X")
# Kafka auth. kafka_env DOC VAR: the value of VAR, or "name/key" of its secretKeyRef, in DOC.
kafka_env() {
  awk -v v="$2" '$0 ~ "^ *- name: "v"$" {f=1; next} f && /^ *- name: / {exit}
    f && /^ *value: / {sub(/^ *value: /, ""); gsub(/"/, ""); print; exit}
    f && /^ *name: / {n=$2} f && /^ *key: / {k=$2} f && n != "" && k != "" {print n "/" k; exit}' <<<"$1"
}
kafka_clients() { # FILE: "kind/name" of every workload with LOUPE_KAFKA_BOOTSTRAP
  awk 'BEGIN{RS="\n---\n"} /name: LOUPE_KAFKA_BOOTSTRAP/ {
    match($0, /\nkind: [A-Za-z]+/); k=substr($0, RSTART+7, RLENGTH-7)
    match($0, /\n  name: [^\n]+/); print k "/" substr($0, RSTART+9, RLENGTH-9)}' "$1"
}
sasl_clients() { # FILE SECRET/KEY: passes when every Kafka client pod logs in with it
  local file=$1 ref=$2 n=0 kn
  while read -r kn; do
    local d; d=$(doc "${kn%%/*}" "${kn#*/}" "$file"); n=$((n + 1))
    [[ $(kafka_env "$d" LOUPE_KAFKA_SECURITY_PROTOCOL) == SASL_* ]] || { echo "    $kn: not SASL"; return 1; }
    [[ $(kafka_env "$d" LOUPE_KAFKA_SASL_MECHANISM) == SCRAM-SHA-512 ]] || { echo "    $kn: no SCRAM-SHA-512"; return 1; }
    [[ $(kafka_env "$d" LOUPE_KAFKA_USERNAME) == loupe ]] || { echo "    $kn: no user"; return 1; }
    local pw; pw=$(kafka_env "$d" LOUPE_KAFKA_PASSWORD)
    [[ $pw == "$ref" || ( ${kn%%/*} == Job && $pw == "$3" ) ]] || { echo "    $kn: password from '$pw'"; return 1; }
  done < <(kafka_clients "$file")
  [[ $n -ge 4 ]] || { echo "    only $n Kafka clients: $(kafka_clients "$file" | tr '\n' ' ')"; return 1; }
}
K=$(doc StatefulSet loupe-kafka "$D")
check "Kafka auth: gateway, training, prediction and the topic Job log in with SCRAM-SHA-512 (bundled)" \
  sasl_clients "$D" loupe-kafka-auth/password loupe-topics/password
secret_data() { doc Secret "$2" "$1" | awk -v k="$3" '$1 == k":" {print $2}'; } # FILE NAME KEY
check "Kafka auth: the chart's Secret holds the user and a generated password" \
  eq "$(secret_data "$D" loupe-kafka-auth username) $(secret_data "$D" loupe-kafka-auth password | wc -c)" '"bG91cGU=" 47'
check "Kafka auth: the topic Job's hook Secret has the same password" \
  eq "$(doc Secret loupe-topics "$D" | awk '/^  password:/{print $2}')" "$(doc Secret loupe-kafka-auth "$D" | awk '/^  password:/{print $2}')"
check "Kafka auth: the broker gives the same user and password their SCRAM credential" \
  eq "$(kafka_env "$K" LOUPE_KAFKA_SCRAM_USERNAME) $(kafka_env "$K" LOUPE_KAFKA_SCRAM_PASSWORD)" "loupe loupe-kafka-auth/password"
# tests/service/test_kafka_auth.py runs run.sh with these, on its own ports.
check "Kafka auth: the broker's listeners (client SASL_PLAINTEXT; internal and controller on loopback)" \
  eq "$(kafka_env "$K" KAFKA_LISTENERS)|$(kafka_env "$K" KAFKA_LISTENER_SECURITY_PROTOCOL_MAP)|$(kafka_env "$K" KAFKA_INTER_BROKER_LISTENER_NAME)|$(kafka_env "$K" KAFKA_SASL_ENABLED_MECHANISMS)|$(kafka_env "$K" LOUPE_KAFKA_ADMIN_BOOTSTRAP)" \
  "CLIENT://:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093|CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,CLIENT:SASL_PLAINTEXT|INTERNAL|SCRAM-SHA-512|127.0.0.1:9094"
broker_script() {
  grep -A3 '^ *command:' <<<"$K" | grep -q '/etc/loupe/kafka/run.sh' \
    && grep -A2 'name: run$' <<<"$K" | grep -q 'mountPath: /etc/loupe/kafka' \
    && doc ConfigMap loupe-kafka "$D" | grep -q 'kafka.admin.ConfigCommand'
}
check "Kafka auth: the broker runs the chart's files/kafka/run.sh, mounted from its ConfigMap" broker_script
check "Kafka auth: the broker is ready only once the credential is written" \
  grep -q 'command: \[test, -f, /tmp/kafka-ready\]' <<<"$K"
external_scram() {
  sasl_clients "$X" loupe/password loupe/password && [[ -z $(secret_data "$X" loupe-kafka-auth password) ]] \
    && [[ -z $(doc Secret loupe-topics "$X") ]]
}
check "Kafka auth: external SCRAM reads the password from kafka.auth.existingSecret, no chart copy" external_scram
keda_auth() {
  doc ScaledObject loupe-training "$G" | grep -q 'name: loupe-kafka-auth' \
    && doc TriggerAuthentication loupe-kafka-auth "$G" | grep -q 'parameter: password'
}
check "Kafka auth: KEDA's scaler authenticates through a TriggerAuthentication on the same Secret" keda_auth
check "Kafka auth: external PLAINTEXT sets no credentials" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set kafka.bundled=false,kafka.bootstrap=k:9092 | grep -q 'LOUPE_KAFKA_PASSWORD' && exit 1 || exit 0"
check "probes: native gRPC probes on the four gRPC services (3 each)" eq "$(count '^ *grpc:$' "$D")" 12
check "probes: httpGet /healthz on the gateway" grep -q 'path: /healthz' <(doc Deployment loupe-gateway "$D")
check "HPA: gateway and prediction by default" eq "$(count '^kind: HorizontalPodAutoscaler' "$D")" 2
check "HPA: none when disabled (minimal)" eq "$(count '^kind: HorizontalPodAutoscaler' "$M")" 0
check "HPA: autoscaled Deployments leave replicas to the HPA" \
  eq "$(doc Deployment loupe-gateway "$D" | count '^  replicas:' /dev/stdin)" 0
check "NetworkPolicy: one per service and bundled store by default" eq "$(count '^kind: NetworkPolicy' "$D")" 9
check "NetworkPolicy: none when disabled (minimal)" eq "$(count '^kind: NetworkPolicy' "$M")" 0
check "PDB: none when disabled (minimal)" eq "$(count '^kind: PodDisruptionBudget' "$M")" 0
check "ServiceMonitor: none unless enabled" eq "$(count '^kind: ServiceMonitor' "$D")" 0
check "ServiceMonitor: one per service when enabled" eq "$(count '^kind: ServiceMonitor' "$X")" 6
check "KEDA: no ScaledObject unless enabled" eq "$(count '^kind: ScaledObject' "$D")" 0
check "KEDA: ScaledObject on the trainers' consumer lag when enabled" \
  grep -q 'consumerGroup: loupe-trainers' <(doc ScaledObject loupe-training "$G")
check "Ingress: only when enabled" eq "$(count '^kind: Ingress' "$D")/$(count '^kind: Ingress' "$X")" 0/1
# The orphan sweep: a CronJob, and then no loop in the gateway replicas.
S=$(doc CronJob loupe-sweep "$D")
image_of() { awk '/^ *image: /{gsub(/"/, "", $2); print $2; exit}' <<<"$1"; }
sweep_job() {
  grep -q 'command: \[python, -m, loupe_gateway.orphans\]' <<<"$S" \
    && grep -q '^  concurrencyPolicy: Forbid$' <<<"$S" && grep -q 'restartPolicy: Never' <<<"$S" \
    && eq "$(image_of "$S")" "$(image_of "$(doc Deployment loupe-gateway "$D")")" \
    && eq "$(kafka_env "$S" LOUPE_ORPHAN_GRACE_S)" 3600 \
    && eq "$(kafka_env "$S" LOUPE_INTERNAL_SECRET)" loupe-internal/internal-secret \
    && eq "$(kafka_env "$S" LOUPE_METADATA_TARGET)" "$(kafka_env "$(doc Deployment loupe-gateway "$D")" LOUPE_METADATA_TARGET)" \
    && eq "$(grep -oE 'name: LOUPE_[A-Z_]+' <<<"$S" | cut -c7- | sort | tr '\n' ' ')" \
      "LOUPE_INTERNAL_SECRET LOUPE_LOG_LEVEL LOUPE_METADATA_TARGET LOUPE_ORPHAN_GRACE_S LOUPE_STORAGE_TARGET "
}
# (tests/e2e/test_orphan_sweep.py runs the one-shot with only these variables: CRONJOB_ENV.)
check "sweep: a CronJob runs python -m loupe_gateway.orphans from the gateway image, one run at a time, with only the metadata and storage settings" sweep_job
check "sweep: the gateway replicas run no sweep loop while the CronJob is on" \
  eq "$(kafka_env "$(doc Deployment loupe-gateway "$D")" LOUPE_ORPHAN_SWEEP_INTERVAL_S)" 0
peers() { doc NetworkPolicy "$1" "$2" | grep -c 'component: sweep$' || true; } # NAME FILE
check "sweep: only metadata and storage admit the sweep's pods" \
  eq "$(for c in gateway metadata storage training prediction torchserve postgresql minio kafka; do printf '%s=%s ' $c "$(peers loupe-$c "$D")"; done)" \
  "gateway=0 metadata=1 storage=1 training=0 prediction=0 torchserve=0 postgresql=0 minio=0 kafka=0 "
render "$WORK/no-sweep.yaml" --set sweep.enabled=false
check "sweep: off, no CronJob, no peer for it, and each gateway sweeps on its own (hourly)" \
  eq "$(count '^kind: CronJob' "$WORK/no-sweep.yaml")$(count 'component: sweep' "$WORK/no-sweep.yaml")$(doc Deployment loupe-gateway "$WORK/no-sweep.yaml" | count LOUPE_ORPHAN_SWEEP_INTERVAL_S /dev/stdin)" 000
check "sweep: the offline checks pass with it off" "$VALIDATE" "$WORK/no-sweep.yaml"
check "hardening: every Loupe container is read-only, non-root, drops ALL" \
  eq "$(count 'readOnlyRootFilesystem: true' "$D")" "$(( $(count '^kind: Deployment' "$D") + $(count '^kind: CronJob' "$D") + 2 + 3 + 1 ))"
check "schema: a wrong type is rejected" \
  bash -c "! '$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set training.gpu.enabled=maybe"
check "schema: an unknown value is rejected" \
  bash -c "! '$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set gateway.replicas=3"
check "required: external Kafka without kafka.bootstrap fails with a message" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set kafka.bundled=false 2>&1 | grep -q 'kafka.bootstrap is required'"
check "required: external SASL without a password or existingSecret fails with a message" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set kafka.bundled=false,kafka.bootstrap=k:9092,kafka.auth.protocol=SASL_SSL 2>&1 | grep -q 'kafka.auth.existingSecret or kafka.auth.password is required'"
check "required: a bundled Kafka password the broker cannot take fails with a message" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set-string 'kafka.auth.password=a=b' 2>&1 | grep -q 'credential syntax allows no'"
check "required: external PostgreSQL without a DSN or existingSecret fails with a message" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set postgresql.bundled=false 2>&1 | grep -q 'postgresql.existingSecret or postgresql.dsn is required'"

# Mutual TLS on the internal plane (internalTLS).
check "internal TLS: off by default (no TLS directory, no health-only port)" \
  eq "$(count 'LOUPE_INTERNAL_TLS_DIR\|LOUPE_HEALTH_PORT\|internal-tls' "$D")" 0
check "required: internalTLS.enabled without a secretName fails with a message" \
  bash -c "'$HELM' template x '$CHART' --kube-version $KUBE_VERSION --set internalTLS.enabled=true 2>&1 | grep -q 'internalTLS.enabled needs internalTLS.secretName'"
T=$WORK/internal-tls.yaml
render "$T" --set internalTLS.enabled=true,internalTLS.secretName=loupe-internal-tls,internalTLS.serverName=loupe-internal
check "internal TLS: the rendered manifests pass the API types and reference checks" "$VALIDATE" "$T"
tls_client() { # NAME: the Deployment reads the Secret's files from the mounted directory
  local d; d=$(doc Deployment "$1" "$T")
  [[ $(kafka_env "$d" LOUPE_INTERNAL_TLS_DIR) == /etc/loupe/internal-tls ]] \
    && [[ $(kafka_env "$d" LOUPE_INTERNAL_TLS_SERVER_NAME) == loupe-internal ]] \
    && grep -A1 '^ *- name: internal-tls$' <<<"$d" | grep -q 'mountPath: /etc/loupe/internal-tls' \
    && grep -A2 '^ *- name: internal-tls$' <<<"$d" | grep -q 'secretName: loupe-internal-tls'
}
tls_server() { # NAME: a TLS client whose three probes use the plaintext health-only port
  local d; d=$(doc Deployment "$1" "$T")
  tls_client "$1" && [[ $(kafka_env "$d" LOUPE_HEALTH_PORT) == 8090 ]] \
    && eq "$(grep -A1 '^ *grpc:$' <<<"$d" | grep -c 'port: 8090')" 3 \
    && grep -B1 'containerPort: 8090' <<<"$d" | grep -q 'name: grpc-health'
}
check "internal TLS: the gateway presents the install's certificate" tls_client loupe-gateway
check "internal TLS: metadata, storage, training and prediction serve it, probes on the health port" \
  bash -c "$(declare -f doc kafka_env eq tls_client tls_server); T='$T'; for c in metadata storage training prediction; do tls_server loupe-\$c || exit 1; done"
sweep_tls() {
  local d; d=$(doc CronJob loupe-sweep "$T")
  [[ $(kafka_env "$d" LOUPE_INTERNAL_TLS_DIR) == /etc/loupe/internal-tls ]] \
    && grep -A1 '^ *- name: internal-tls$' <<<"$d" | grep -q 'mountPath: /etc/loupe/internal-tls' \
    && grep -A2 '^ *- name: internal-tls$' <<<"$d" | grep -q 'secretName: loupe-internal-tls'
}
check "internal TLS: the sweep's CronJob presents the install's certificate" sweep_tls
check "internal TLS: TorchServe gets neither the Secret nor the variables" \
  eq "$(doc Deployment loupe-torchserve "$T" | count 'internal-tls\|LOUPE_INTERNAL_TLS' /dev/stdin)" 0

# ---- summary --------------------------------------------------------------------------------------
printf '\n== summary\n'
printf '%s\n' "${SUMMARY[@]}"
npass=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^PASS' || true)
nfail=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^FAIL' || true)
printf '%d passed, %d failed in %s (helm %s, k8s.io/api for Kubernetes %s)\n' "$npass" "$nfail" "$(elapsed "$T0")" "$HELM_VERSION" "$KUBE_VERSION"
exit "$FAILED"
