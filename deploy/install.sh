#!/bin/sh
# Installs a mirrormesh hub or node agent as a systemd service on this machine (Debian/Raspberry
# Pi OS), from this checkout. Idempotent: run it again after a `git pull`; it changes only what
# differs, and never overwrites /etc/mirrormesh/<role>.env once it exists.
#
#   sudo deploy/install.sh hub|agent|dashboard [--no-start] [--root DIR]
#
# --no-start  install and enable nothing: no daemon-reload, no systemctl enable/start.
# --root DIR  install under DIR instead of / (a test, an image being built): the system user goes
#             into DIR/etc/passwd and DIR/etc/group, and systemctl is not run.
set -eu

usage() { echo "usage: $0 hub|agent|dashboard [--no-start] [--root DIR]" >&2; exit 2; }

role='' root='' start=1
while [ $# -gt 0 ]; do
  case $1 in
    hub|agent|dashboard) role=$1 ;;
    --no-start) start=0 ;;
    --root) [ $# -ge 2 ] || usage; root=$2; shift ;;
    --root=*) root=${1#--root=} ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift
done
[ -n "$role" ] || usage
if [ -n "$root" ]; then
  [ -d "$root" ] || { echo "--root $root: no such directory" >&2; exit 2; }
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=''
fi

here=$(cd "$(dirname "$0")/.." && pwd)
user=mirrormesh
unit=mirrormesh-$role.service
case $role in
  hub|dashboard) state=/var/lib/mirrormesh ;;
  agent) state=/var/lib/mirrormesh-agent ;;
esac
node=$(command -v node || echo /usr/bin/node)
changed=0
say() { echo "$*"; }
did() { changed=$((changed + 1)); echo "  + $*"; }
same() { echo "  = $*"; }
if [ "$(id -u)" -ne 0 ]; then echo "run as root (sudo $0 ...)" >&2; exit 1; fi

# --- the system user (both roles run as `mirrormesh`) ---
if [ -z "$root" ]; then
  if id "$user" >/dev/null 2>&1; then same "user $user exists"
  else
    useradd --system --user-group --home-dir "$state" --no-create-home --shell /usr/sbin/nologin "$user"
    did "system user $user"
  fi
  # The agent unit's SupplementaryGroups=audio: a missing group stops the unit from starting.
  if [ "$role" = agent ] && ! getent group audio >/dev/null; then groupadd --system audio; did "group audio"; fi
else
  mkdir -p "$root/etc"
  for f in passwd group; do [ -e "$root/etc/$f" ] || : > "$root/etc/$f"; done
  if grep -q "^$user:" "$root/etc/passwd"; then same "user $user exists (in $root/etc/passwd)"
  else
    # The next free system id below 1000 in that root's files, as useradd --system would pick.
    id=999
    while cut -d: -f3 "$root/etc/passwd" "$root/etc/group" | grep -qx "$id"; do id=$((id - 1)); done
    grep -q "^$user:" "$root/etc/group" || echo "$user:x:$id:" >> "$root/etc/group"
    gid=$(grep "^$user:" "$root/etc/group" | cut -d: -f3)
    echo "$user:x:$id:$gid:mirrormesh:$state:/usr/sbin/nologin" >> "$root/etc/passwd"
    did "system user $user ($id) in $root/etc/passwd (no useradd under --root)"
  fi
fi
if [ -z "$root" ]; then uid=$(id -u "$user"); gid=$(id -g "$user")
else uid=$(grep "^$user:" "$root/etc/passwd" | cut -d: -f3); gid=$(grep "^$user:" "$root/etc/passwd" | cut -d: -f4)
fi

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  if [ -d "$root$1" ] && [ "$(stat -c '%a %u:%g' "$root$1")" = "$2 $3" ]; then same "$1"; return; fi
  mkdir -p "$root$1"
  chmod "$2" "$root$1"
  chown "$3" "$root$1"
  did "$1 (mode $2)"
}
# put SRC DEST MODE: copy when the content or mode differs.
put() {
  if [ -f "$root$2" ] && cmp -s "$1" "$root$2" && [ "$(stat -c %a "$root$2")" = "$3" ]; then same "$2"; return; fi
  mkdir -p "$(dirname "$root$2")"
  cp "$1" "$root$2.tmp.$$"
  chmod "$3" "$root$2.tmp.$$"
  mv "$root$2.tmp.$$" "$root$2"
  did "$2"
}

# --- state: the unit's StateDirectory= (systemd creates it too, owned by User=, with
# StateDirectoryMode=0750); made here so that `mirrormesh node add` works before the first start ---
ensure_dir "$state" 750 "$uid:$gid"

# --- /etc/mirrormesh/<role>.env: from the example once, never overwritten (it holds secrets) ---
ensure_dir /etc/mirrormesh 755 0:0
envfile=/etc/mirrormesh/$role.env
newenv=0
if [ -e "$root$envfile" ]; then
  same "$envfile (kept: edited by you)"
  mode=$(stat -c %a "$root$envfile")
  [ "$mode" = 600 ] || echo "  ! $envfile has mode $mode; it holds passwords: chmod 600 $envfile"
else
  old=$(umask); umask 077
  cp "$here/deploy/env/$role.env.example" "$root$envfile.tmp.$$"
  chown "$uid:$gid" "$root$envfile.tmp.$$"
  chmod 600 "$root$envfile.tmp.$$"
  mv "$root$envfile.tmp.$$" "$root$envfile"
  umask "$old"
  newenv=1
  did "$envfile (mode 600, from deploy/env/$role.env.example)"
fi

# --- the unit, pointed at this checkout and this Node ---
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -e "s#/opt/mirrormesh#$here#g" -e "s#^ExecStart=/usr/bin/node #ExecStart=$node #" "$here/deploy/systemd/$unit" > "$tmp"
put "$tmp" "/etc/systemd/system/$unit" 644
put "$here/deploy/logrotate/mirrormesh" /etc/logrotate.d/mirrormesh 644

# --- systemd ---
if [ -n "$root" ]; then
  say "systemctl not run (--root $root)"
elif [ "$start" = 0 ]; then
  say "systemctl not run (--no-start)"
elif ! command -v systemctl >/dev/null || [ ! -d /run/systemd/system ]; then
  say "systemd is not running here: start the unit yourself"
else
  systemctl daemon-reload
  systemctl enable --quiet "$unit"
  if [ "$role" = agent ] && [ "$newenv" = 1 ]; then
    say "enabled $unit; not started: $envfile needs the node's id and password first"
  elif [ "$changed" -gt 0 ]; then
    systemctl restart "$unit"; did "systemctl restart $unit"
  else
    systemctl start "$unit"
  fi
fi

if [ "$changed" = 0 ]; then say "nothing changed"; else say "$changed change(s)"; fi
cli="$node $here/ops/dist/cli.js"
echo
echo "Next steps:"
case $role in
  hub)
    echo "  1. Review $envfile (MQTT_HOST, HTTP_HOST, TLS)."
    echo "  2. TLS for the broker:   sudo -u $user $cli --env-file $envfile tls init"
    echo "  3. Add each mirror:      sudo -u $user $cli --env-file $envfile node add kitchen   (password printed once)"
    echo "  4. Check:                systemctl status $unit; $cli nodes; curl -s 127.0.0.1:8080/readyz"
    echo "  Incidents: $state/entries/*-runbook.md; alerts: $here/ops/prometheus/alerts.yml"
    ;;
  agent)
    echo "  1. On the hub: mirrormesh node add <id>; put NODE_ID, MQTT_URL and MQTT_PASSWORD in $envfile."
    echo "  2. sudo systemctl enable --now $unit"
    echo "  3. Check:   sudo -u $user $cli --env-file $envfile doctor   and   ... check"
    ;;
  dashboard)
    echo "  1. Review $envfile (DASHBOARD_PORT, OFFLINE_ALERT_MIN, LIGHT_DEVICES, HA_URL/HA_TOKEN)."
    echo "  2. Open http://127.0.0.1:<DASHBOARD_PORT>/dashboard (through an SSH tunnel: ssh -L 1880:127.0.0.1:1880 <hub>)."
    echo "  3. Check:   systemctl status $unit; journalctl -u $unit"
    ;;
esac
