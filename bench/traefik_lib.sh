# Traefik for bench/controllers.sh and bench/versus.sh (sourced, not run).

# traefik_start TRAEFIK WORK PORT: Traefik on CPU 1 with one entry point on
# 127.0.0.1:PORT and the routers of WORK/dynamic.yaml; sets traefik_pid.
traefik_start() {
  cat > "$2/traefik.yaml" <<T
global: { checkNewVersion: false, sendAnonymousUsage: false }
entryPoints: { web: { address: "127.0.0.1:$3" } }
providers: { file: { filename: "$2/dynamic.yaml" } }
log: { level: ERROR }
T
  taskset -c 1 "$1" --configFile="$2/traefik.yaml" > "$2/traefik.log" 2>&1 &
  traefik_pid=$!
}
