#!/usr/bin/env bash
# Set up and run the edge-training benchmark suite on this device.
#
#   ./run.sh [PLATFORM] [PYTEST ARGS...]        run the benchmarks (default profile: quick), save
#                                               results under results/<device-id>/ and compare
#                                               with the previous run of this device
#   ./run.sh test [PLATFORM] [PYTEST ARGS...]   run the unit, property and end-to-end tests (what CI runs)
#   ./run.sh test [PLATFORM] fast [ARGS...]     only the unit and property tests (-m "not slow"; ~2 minutes)
#                                               (both in 2-3 processes; BENCH_TEST_WORKERS=0 for one, e.g. --pdb)
#   ./run.sh distributed [PLATFORM] [ARGS...]   the distributed-training benchmark (torchrun, world
#                                               sizes 1 and 2 on this machine; docs/distributed.md)
#   ./run.sh report [ARGS...]                   only the report over everything in results/ (a light
#                                               environment without torch, .tox/report)
#   ./run.sh fleet INVENTORY [ANSIBLE ARGS...]  run the suite on every device of an Ansible
#                                               inventory and gather the results here (fleet/README.md)
#   ./run.sh --help                             this text
#
# After the benchmarks, python -m bench_support.report compares every saved run and device;
# BENCH_FAIL_ON="METRIC:THRESHOLD,..." (e.g. energy_j:5%,samples_per_s:-5%) makes it a gate (also for
# ./run.sh report).
#
# PLATFORM is cpu, cuda, jetson or auto (default; also BENCH_PLATFORM=...).
# BENCH_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu: the cpu env takes torch from there.
# Needs only Python 3 (>= 3.9) and git; tox is installed into .tox-bootstrap/ if missing.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "run.sh: $*" >&2; exit 2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF'
The benchmarks' own options (--profile, --data-dir, ...) are listed in docs/options.md, and with pytest's
by `.tox/cpu/bin/python -m pytest --help` once the environment exists; the report's by
`./run.sh report --help`.
EOF
}

command="bench"
case "${1:-}" in
  -h | --help | help) usage; exit 0 ;;
  test | bench | distributed | report) command=$1; shift ;;
  fleet) shift; exec fleet/run "$@" ;;
esac
case "${1:-}" in
  -h | --help) [ "$command" = report ] || { usage; exit 0; } ;;
esac

platform=${BENCH_PLATFORM:-auto}
case "${1:-}" in
  cpu | cuda | jetson | auto) platform=$1; shift ;;
  --platform=*) platform=${1#--platform=}; shift ;;
esac

detect_platform() {
  # Jetson: the L4T release file, or a device-tree model naming the board.
  if [ -e /etc/nv_tegra_release ] ||
    { [ -r /proc/device-tree/model ] && tr -d '\0' </proc/device-tree/model | grep -qiE 'jetson|nvidia'; }; then
    echo jetson
  # CUDA: a visible NVIDIA GPU (driver loaded and at least one device listed).
  elif { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; } ||
    ls /proc/driver/nvidia/gpus/* >/dev/null 2>&1; then
    echo cuda
  else
    echo cpu
  fi
}

if [ "$platform" = auto ]; then
  platform=$(detect_platform)
  echo "run.sh: platform detected: $platform (override with ./run.sh [test] cpu|cuda|jetson)"
else
  case "$platform" in
    cpu | cuda | jetson) echo "run.sh: platform chosen: $platform" ;;
    *) die "unknown platform '$platform' (expected cpu, cuda, jetson or auto)" ;;
  esac
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || die "python3 not found: install Python >= 3.9 first"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  found=$("$python" --version 2>&1)
  case "$found" in
    "Python 3.8"* | "Python 3.6"*)
      # JetPack 5 ships 3.8 and JetPack 4 3.6, with NVIDIA torch wheels for those only (docs/platforms.md, On a Jetson).
      die "Python >= 3.9 is needed, found $found (JetPack 4/5?): upgrade to JetPack 6, or see docs/platforms.md 'On a Jetson'" ;;
    *) die "Python >= 3.9 is needed, found $found" ;;
  esac
fi

# tox: use one that is already installed, else bootstrap a private copy once.
if "$python" -m tox --version >/dev/null 2>&1; then
  tox=("$python" -m tox)
else
  if ! .tox-bootstrap/bin/python -m tox --version >/dev/null 2>&1; then
    echo "run.sh: installing tox into .tox-bootstrap/ (once)"
    rm -rf .tox-bootstrap
    "$python" -m venv .tox-bootstrap || die "could not create a virtualenv (on Debian: apt-get install python3-venv)"
    .tox-bootstrap/bin/python -m pip install --quiet --disable-pip-version-check 'tox>=4.4' ||
      die "could not install tox with pip"
  fi
  tox=(.tox-bootstrap/bin/python -m tox)
fi

# A full disk makes pip fail half-way through torch ("No space left on device" under a page of warnings), after
# a minute or more: say it first, in one line. What the environment takes: the registry's x86_64 torch is a CUDA
# build (5.5 GB in the venv, ~6 GB with the rest); PyTorch's CPU wheels, aarch64's torch and a Jetson's system
# torch (not reinstalled) leave well under 2 GB. BENCH_SKIP_DISK_CHECK=1 tries anyway.
check_disk() {
  [ -z "${BENCH_SKIP_DISK_CHECK:-}" ] || return 0
  local need_mb=2048 free_kb where old_kb line
  # BENCH_TORCH_INDEX_URL changes the cpu environment only; cuda always takes the CUDA build.
  if [ "$(uname -m)" = x86_64 ] &&
    { [ "$platform" = cuda ] || { [ "$platform" = cpu ] && [ -z "${BENCH_TORCH_INDEX_URL:-}" ]; }; }; then
    need_mb=6656
  fi
  mkdir -p .tox
  line=$(df -Pk .tox 2>/dev/null | awk 'NR == 2 {print $4, $NF}') || return 0
  free_kb=${line%% *}
  where=${line#* }
  case "$free_kb" in '' | *[!0-9]*) return 0 ;; esac  # df said nothing usable: let pip find out
  if [ -d ".tox/$platform" ]; then  # a rebuild removes the old environment first
    old_kb=$(du -sk ".tox/$platform" 2>/dev/null | cut -f1) || old_kb=0
    case "$old_kb" in '' | *[!0-9]*) old_kb=0 ;; esac
    free_kb=$((free_kb + old_kb))
  fi
  if [ "$free_kb" -lt $((need_mb * 1024)) ]; then
    die "building .tox/$platform needs about $((need_mb / 1024)).$((need_mb % 1024 * 10 / 1024)) GB free on ${where:-its filesystem}, only $((free_kb / 1024)) MB are: free some space and run again (BENCH_SKIP_DISK_CHECK=1 tries anyway)"
  fi
}

# The platform environment. BENCH_TORCH_INDEX_URL (cpu only: e.g. PyTorch's CPU-only wheels) decides
# which torch it holds, so a change of it rebuilds the environment.
build_env() {
  local recreate=()
  if [ "$platform" = cpu ] && [ -d .tox/cpu ] &&
    [ "$(cat .tox/cpu/.torch-index 2>/dev/null)" != "${BENCH_TORCH_INDEX_URL:-}" ]; then
    echo "run.sh: BENCH_TORCH_INDEX_URL changed: rebuilding .tox/cpu"
    recreate=(--recreate)
  fi
  if [ ! -x ".tox/$platform/bin/python" ] || [ ${#recreate[@]} -gt 0 ]; then
    check_disk
    # pip is silent for minutes while it installs torch: say what is happening and how long it takes.
    echo "run.sh: building .tox/$platform (torch and torchvision: ~5.5 GB on x86_64, 1-3 minutes from a local wheel cache, longer from the network)"
  fi
  "${tox[@]}" run -e "$platform" --notest ${recreate[@]+"${recreate[@]}"}
  if [ "$platform" = cpu ]; then
    printf '%s' "${BENCH_TORCH_INDEX_URL:-}" >.tox/cpu/.torch-index
  fi
}

# Run a command as a child that a stop reaches: SIGTERM (timeout, CI, systemd), SIGINT (Ctrl-C) and SIGHUP to
# run.sh become one SIGINT to the child (tox passes it on to pytest, which saves what finished, as on Ctrl-C), and
# run.sh waits for it. Without this, a TERM ends run.sh alone while tox and pytest go on. The child gets its own
# process group (set -m), so the terminal's Ctrl-C reaches it only through here, once.
# A job started in the background by a script (`nohup ./run.sh > log &`) inherits SIGINT ignored, which bash can
# neither trap nor reset, and Python then never turns it into KeyboardInterrupt: the child is started through a
# Python that sets SIGINT back to its default and execs it.
stopped_by=""
with_sigint='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'
run_child() {
  local child="" status=0
  trap 'stopped_by=TERM; [ -z "$child" ] || kill -INT "$child" 2>/dev/null || true' TERM
  trap 'stopped_by=INT; [ -z "$child" ] || kill -INT "$child" 2>/dev/null || true' INT
  trap 'stopped_by=HUP; [ -z "$child" ] || kill -INT "$child" 2>/dev/null || true' HUP
  set -m
  "$python" -c "$with_sigint" "$@" &
  child=$!
  set +m
  [ -z "$stopped_by" ] || kill -INT "$child" 2>/dev/null || true  # a stop that came while it was starting
  while :; do
    status=0
    wait "$child" || status=$?
    kill -0 "$child" 2>/dev/null || break  # wait also returns when a trapped signal arrives
  done
  trap - TERM INT HUP
  return "$status"
}

# 128 + the signal's number, as a shell reports a process that a signal ended.
exit_if_stopped() {
  [ -n "$stopped_by" ] || return 0
  echo "run.sh: stopped by SIG$stopped_by${1:-}" >&2
  case "$stopped_by" in
    HUP) exit 129 ;; INT) exit 130 ;; *) exit 143 ;;
  esac
}

if [ "$command" = test ]; then
  case "$platform" in
    cpu) env=tests ;;
    *) env=tests-$platform ;;
  esac
  if [ "${1:-}" = fast ]; then  # no test that starts another interpreter (tests/conftest.py marks them slow)
    shift
    set -- -m "not slow" "$@"
  fi
  # The tests run on the platform environment's interpreter (tox.ini says why), in parallel processes (tox.ini):
  # three where memory allows (each may be waiting on a pytest run holding torch, up to ~2 GB), else two: the cores
  # idle while a test waits on what it started.
  if [ -z "${BENCH_TEST_WORKERS:-}" ]; then
    avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || true)
    if [ "${avail_kb:-0}" -ge $((8 * 1024 * 1024)) ]; then export BENCH_TEST_WORKERS=3; else export BENCH_TEST_WORKERS=2; fi
  fi
  build_env
  if ! ".tox/$platform/bin/python" -c 'import xdist' 2>/dev/null; then
    # An environment built before the tests ran in parallel: tox does not reinstall for a new extra.
    echo "run.sh: adding pytest-xdist to .tox/$platform (the tests run in parallel processes)"
    pins=(-c "${BENCH_CONSTRAINTS:-requirements/constraints.txt}")
    [ "$platform" != jetson ] || pins=()
    ".tox/$platform/bin/python" -m pip install -q ${pins[@]+"${pins[@]}"} "pytest-xdist>=3.0" ||
      die "could not install pytest-xdist into .tox/$platform (pip's message is above)"
  fi
  status=0
  run_child "${tox[@]}" run -e "$env" -- "$@" || status=$?
  exit_if_stopped
  exit "$status"
fi

# BENCH_FAIL_ON="energy_j:5%,samples_per_s:-5%" -> --fail-on energy_j:5% --fail-on samples_per_s:-5%
gate=()
IFS=',' read -r -a rules <<<"${BENCH_FAIL_ON:-}"
for rule in ${rules[@]+"${rules[@]}"}; do
  [ -n "$rule" ] && gate+=(--fail-on "$rule")
done

if [ "$command" = report ]; then
  # The report imports no torch: a light environment, built in seconds (a laptop gathering a fleet needs no more).
  [ -x .tox/report/bin/python ] || echo "run.sh: building .tox/report (matplotlib, numpy, pytest-benchmark; no torch)"
  if ! log=$("${tox[@]}" run -e report --notest 2>&1); then
    printf '%s\n' "$log" | tail -n 15 >&2
    die "could not build the report environment (.tox/report): pip's last lines are above"
  fi
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec .tox/report/bin/python -m bench_support.report "$@" ${gate[@]+"${gate[@]}"}
  fi
  exec .tox/report/bin/python -m bench_support.report results "$@" ${gate[@]+"${gate[@]}"}
fi

# Benchmarks: save per device and compare with this device's previous run (the plugin
# works out the device id and whether a previous run exists).
# The environment first, then the one-line torch check (tox would frame its message in its own
# output), then the benchmarks.
build_env
".tox/$platform/bin/python" -m bench_support.torch_check "$platform" || exit 2
status=0
selection=()  # the default run: benchmarks/ (pytest.ini), the distributed module left out
[ "$command" = distributed ] && selection=(benchmarks/test_distributed.py)
run_child "${tox[@]}" run -e "$platform" -- ${selection[@]+"${selection[@]}"} --save-results=results "$@" || status=$?
# A stopped run gets no report: the user asked for the machine back.
exit_if_stopped "; the benchmarks that finished were saved (./run.sh report shows them)"

# Then the report over every saved run and device: tables, report.csv, plots/, with the regression
# gate of BENCH_FAIL_ON; in the folder the run saved to (results/, or the last --save-results given).
saved=results
previous=
for arg in "$@"; do
  case "$arg" in
    --save-results=*) saved=${arg#--save-results=} ;;
    *) [ "$previous" = --save-results ] && saved=$arg ;;
  esac
  previous=$arg
done
case "$saved" in
  "") saved=results ;;                   # --save-results= saves nothing: the report shows results/
  "~" | "~/"*) saved=$HOME${saved#"~"} ;; # expanded by the plugin, not by the shell inside --save-results=~/...
esac
report_status=0
".tox/$platform/bin/python" -m bench_support.report "$saved" ${gate[@]+"${gate[@]}"} || report_status=$?
if [ -f "$saved/report.html" ]; then
  echo "run.sh: report: $saved/report.html (findings, flags, plots, timelines; opens from disk, fetches nothing)"
fi
[ "$status" -ne 0 ] && exit "$status"
exit "$report_status"
