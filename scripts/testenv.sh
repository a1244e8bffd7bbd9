#!/usr/bin/env bash
# Test environment for the Occopus test suite: the real services some tests talk to.
#
#   scripts/testenv.sh up [SERVICE...]    start what is missing, write the env file
#   scripts/testenv.sh down               stop what `up` started (and nothing else)
#   scripts/testenv.sh env                print the env file
#
# Services: docker (Docker Engine on /var/run/docker.sock), moto (EC2 API emulator on a
# free loopback port, SigV4 checking on), mysql (MariaDB on a free loopback port),
# graphviz (the `dot` program). Default: all of them.
#
# Missing programs are installed from Debian packages when running as root with apt-get
# (CI machines are Debian and run as root); otherwise the script says how to provide them.
# Everything listens on 127.0.0.1 only. State lives in $OCCOPUS_TESTENV_DIR (default
# <cargo target dir>/testenv); the moto virtualenv is cached under
# ${XDG_CACHE_HOME:-~/.cache}/occopus/testenv so warm runs skip the install.
#
# The env file ($OCCOPUS_TESTENV_DIR/env) holds KEY=VALUE lines that tests read:
#   OCCOPUS_TEST_DOCKER_ENDPOINT   unix:///var/run/docker.sock
#   OCCOPUS_TEST_EC2_ENDPOINT      http://127.0.0.1:<port>
#   OCCOPUS_TEST_EC2_REGION        us-east-1
#   OCCOPUS_TEST_EC2_ACCESS_KEY / OCCOPUS_TEST_EC2_SECRET_KEY   an IAM user's key pair
#   OCCOPUS_TEST_MYSQL_HOST / _PORT / _USER / _PASS / _DB
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dir="${OCCOPUS_TESTENV_DIR:-$target/testenv}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/occopus/testenv"
envfile="$dir/env"
mkdir -p "$dir/started" "$cache"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

set_env() { # KEY VALUE: replace or append in the env file
    touch "$envfile"
    grep -v "^$1=" "$envfile" > "$envfile.tmp" || true
    printf '%s=%s\n' "$1" "$2" >> "$envfile.tmp"
    mv "$envfile.tmp" "$envfile"
}

apt_updated=0
apt_install() { # PACKAGE...
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing $*; install them (Debian: apt-get install -y $*) and rerun"
    fi
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_for() { # SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local i
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

started() { # NAME PID: remember that we started it
    echo "$2" > "$dir/started/$1.pid"
}

# ---------------------------------------------------------------------------- docker
up_docker() {
    local sock=/var/run/docker.sock
    command -v busybox >/dev/null || [ -x /bin/busybox ] || apt_install busybox-static
    if curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
        log "docker: an engine already answers on $sock"
    else
        command -v dockerd >/dev/null || apt_install docker.io
        command -v dockerd >/dev/null || die "dockerd not found after install"
        log "docker: starting dockerd (log: $dir/dockerd.log)"
        dockerd --host "unix://$sock" > "$dir/dockerd.log" 2>&1 &
        started docker $!
        wait_for 60 dockerd curl -sf --unix-socket "$sock" http://localhost/_ping ||
            die "dockerd did not answer within 60 s; see $dir/dockerd.log"
    fi
    set_env OCCOPUS_TEST_DOCKER_ENDPOINT "unix://$sock"
}

# ---------------------------------------------------------------------------- moto (EC2)
up_moto() {
    local venv="$cache/moto-venv"
    if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import moto, flask, flask_cors, boto3' 2>/dev/null; then
        python3 -c 'import venv' 2>/dev/null || apt_install python3-venv
        log "moto: creating virtualenv $venv (pip install moto flask flask-cors)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check 'moto>=5,<6' flask flask-cors
    fi
    local port; port=$(free_port)
    # The first 3 requests are unauthenticated (used below to create an IAM user, its
    # policy and its key); from then on moto checks every request's SigV4 signature.
    log "moto: starting on 127.0.0.1:$port (log: $dir/moto.log)"
    INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port" \
        > "$dir/moto.log" 2>&1 &
    started moto $!
    wait_for 60 moto curl -sf "http://127.0.0.1:$port/moto-api/" ||
        die "moto did not answer within 60 s; see $dir/moto.log"
    local keys
    keys=$("$venv/bin/python" - "$port" <<'PY'
import json, sys, boto3
url = f"http://127.0.0.1:{sys.argv[1]}"
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="occopus-test")
iam.put_user_policy(UserName="occopus-test", PolicyName="ec2",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="occopus-test")["AccessKey"]
# Signature checking must now be on: a wrong secret is refused.
ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=k["AccessKeyId"], aws_secret_access_key="wrong")
try:
    ec2.describe_instances()
    sys.exit("moto accepted a wrong secret: signature checking is off")
except ec2.exceptions.ClientError as e:
    if e.response["Error"]["Code"] != "AuthFailure":
        raise
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
)
    set_env OCCOPUS_TEST_EC2_ENDPOINT "http://127.0.0.1:$port"
    set_env OCCOPUS_TEST_EC2_REGION us-east-1
    set_env OCCOPUS_TEST_EC2_ACCESS_KEY "${keys%% *}"
    set_env OCCOPUS_TEST_EC2_SECRET_KEY "${keys##* }"
}

# ---------------------------------------------------------------------------- mysql
up_mysql() {
    command -v mariadbd >/dev/null || command -v mysqld >/dev/null || apt_install mariadb-server
    local bin; bin=$(command -v mariadbd || command -v mysqld)
    local install; install=$(command -v mariadb-install-db || command -v mysql_install_db)
    local client; client=$(command -v mariadb || command -v mysql)
    local data="$dir/mysql" port; port=$(free_port)
    rm -rf "$data"; mkdir -p "$data"
    log "mysql: initialising $data"
    "$install" --no-defaults --datadir="$data" --user="$(id -un)" \
        --auth-root-authentication-method=normal > "$dir/mysql-install.log" 2>&1 ||
        die "mariadb-install-db failed; see $dir/mysql-install.log"
    log "mysql: starting on 127.0.0.1:$port (log: $dir/mysql.log)"
    "$bin" --no-defaults --datadir="$data" --user="$(id -un)" --bind-address=127.0.0.1 \
        --port="$port" --socket="$data/mysqld.sock" --pid-file="$data/mysqld.pid" \
        --skip-name-resolve > "$dir/mysql.log" 2>&1 &
    started mysql $!
    wait_for 60 mysql "$client" --no-defaults -uroot --socket="$data/mysqld.sock" -e 'select 1' ||
        die "MariaDB did not answer within 60 s; see $dir/mysql.log"
    local pass; pass="t$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    "$client" --no-defaults -uroot --socket="$data/mysqld.sock" <<SQL
CREATE DATABASE occotest;
CREATE USER 'occopus'@'%' IDENTIFIED BY '$pass';
GRANT ALL ON occotest.* TO 'occopus'@'%';
SQL
    set_env OCCOPUS_TEST_MYSQL_HOST 127.0.0.1
    set_env OCCOPUS_TEST_MYSQL_PORT "$port"
    set_env OCCOPUS_TEST_MYSQL_USER occopus
    set_env OCCOPUS_TEST_MYSQL_PASS "$pass"
    set_env OCCOPUS_TEST_MYSQL_DB occotest
}

# ---------------------------------------------------------------------------- graphviz
up_graphviz() {
    command -v dot >/dev/null || apt_install graphviz
}

# ---------------------------------------------------------------------------- main
down() {
    local f name pid
    for f in "$dir"/started/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid); pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping $name (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    rm -f "$envfile"
}

cmd="${1:-}"; shift || true
case "$cmd" in
    up)
        services=("$@")
        [ ${#services[@]} -gt 0 ] || services=(docker moto mysql graphviz)
        for s in "${services[@]}"; do
            case "$s" in
                docker|moto|mysql|graphviz) "up_$s" ;;
                *) die "unknown service '$s' (docker, moto, mysql, graphviz)" ;;
            esac
        done
        log "ready; environment in $envfile"
        ;;
    down) down ;;
    env) cat "$envfile" ;;
    *) echo "usage: $0 up [docker|moto|mysql|graphviz ...] | down | env" >&2; exit 2 ;;
esac
