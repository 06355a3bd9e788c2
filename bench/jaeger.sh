# shellcheck shell=bash
# Sourced by bench/run.sh and bench/profile.sh: a Jaeger v2 for the traced
# rows, OTLP/HTTP in, spans in memory (as hookwarden_tests::Jaeger starts
# it). The caller defines free_port, the array pids (killed at exit) and
# on_server (a command prefix, e.g. taskset; may be empty): Jaeger runs on
# the server's CPUs, as its work is part of what tracing costs.

# start_jaeger DIR: starts it with its config and log in DIR; sets
# jaeger_otlp (the OTLP/HTTP port) once it answers.
jaeger_otlp=''
start_jaeger() {
  local dir=$1; mkdir -p "$dir"
  jaeger_otlp=$(free_port)
  local query query_grpc; query=$(free_port) query_grpc=$(free_port)
  cat >"$dir/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_query:
    storage: {traces: memstore}
    http: {endpoint: "127.0.0.1:$query"}
    grpc: {endpoint: "127.0.0.1:$query_grpc"}
  jaeger_storage:
    backends: {memstore: {memory: {max_traces: 100000}}}
receivers:
  otlp: {protocols: {http: {endpoint: "127.0.0.1:$jaeger_otlp"}}}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
YAML
  "${on_server[@]}" "$(tool_path jaeger)" --config "$dir/jaeger.yaml" >"$dir/jaeger.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$jaeger_otlp/v1/traces" && return 0
    sleep 0.1
  done
  cat "$dir/jaeger.log" >&2; die "jaeger did not start"
}
