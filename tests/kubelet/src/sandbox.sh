#!/bin/sh
# Runs as root inside fresh mount and UTS namespaces (unshare --mount --uts, private
# propagation): builds a container's root as an overlay of the host's, bind-mounts the
# container's volumes into it, and execs the command chrooted there. Writes outside the
# volumes land in a tmpfs that vanishes with the namespace, so nothing reaches the host.
#
# usage: sandbox.sh DIR HOSTNAME HOSTS_FILE WORKDIR N [SRC DST ro|rw]xN -- COMMAND [ARG...]
set -eu
dir=$1 name=$2 hosts=$3 workdir=$4 n=$5
shift 5
PATH=/usr/sbin:/usr/bin:/sbin:/bin

# The host's mount points, parents first; taken before this script mounts anything.
mounts=$(awk '$2 != "/" && $2 !~ /\\/ { print $2 }' /proc/self/mounts | sort -u)

mkdir -p "$dir"
mount -t tmpfs -o mode=0755 stash-test-sandbox "$dir"
root=$dir/root
mkdir -p "$root" "$dir/upper/0" "$dir/work/0"
mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper/0,workdir=$dir/work/0" "$root"

# Kernel file systems are shared; every other mounted tree gets an overlay of its own
# (read-only bind where overlay cannot take it). Children of a handled mount come along.
i=0
done_list=
for m in $mounts; do
  skip=
  for d in $done_list; do
    case "$m" in "$d"/*) skip=1 ;; esac
  done
  case "$m" in "$dir"|"$dir"/*) skip=1 ;; esac
  [ -z "$skip" ] || continue
  [ -d "$m" ] || continue
  done_list="$done_list $m"
  case "$m" in
    /proc|/sys|/dev) mount --rbind "$m" "$root$m"; continue ;;
  esac
  i=$((i + 1))
  mkdir -p "$dir/upper/$i" "$dir/work/$i"
  if ! mount -t overlay overlay -o "lowerdir=$m,upperdir=$dir/upper/$i,workdir=$dir/work/$i" "$root$m" 2>/dev/null; then
    # Without an overlay the tree is shown read-only (not its own submounts), or not at all.
    mount --bind "$m" "$root$m"
    mount -o remount,bind,ro "$root$m" || { umount -l "$root$m"; echo "sandbox: hiding $m" >&2; }
  fi
done
# The host's /dev is shared (devices), but not its shared memory.
mount -t tmpfs -o mode=1777,nosuid,nodev stash-test-shm "$root/dev/shm"

# The program to run, bound at a fixed path before the volumes go in: a volume mounted
# over a directory holding it (an emptyDir at /tmp, with a checkout under /tmp) must not
# hide it.
eval "entry=\${$((3 * n + 2))}"
case "$entry" in
  /*)
    if [ -f "$entry" ]; then
      : > "$root/.sandbox-entrypoint"
      mount --bind "$entry" "$root/.sandbox-entrypoint"
    else
      entry=
    fi ;;
  *) entry= ;;
esac

# Volumes. Mount points are made and resolved inside the new root, so a symlink such as
# /var/run -> /run points into the container, never at the host.
while [ "$n" -gt 0 ]; do
  src=$1 dst=$2 ro=$3
  shift 3
  n=$((n - 1))
  case "$dst" in
    /dev|/dev/*|/proc|/proc/*|/sys|/sys/*)
      echo "sandbox: mountPath $dst is in a kernel file system" >&2; exit 1 ;;
  esac
  if [ -d "$src" ]; then
    chroot "$root" mkdir -p "$dst"
  else
    chroot "$root" sh -c 'mkdir -p "$(dirname "$1")" && { [ -e "$1" ] || : > "$1"; }' sh "$dst"
  fi
  real=$(chroot "$root" realpath -m "$dst")
  mount --bind "$src" "$root$real"
  if [ "$ro" = ro ]; then
    mount -o remount,bind,ro "$root$real"
  fi
done

# A fresh file: /etc/hosts may be a symlink that leads out of the root.
rm -f "$root/etc/hosts"
cat "$hosts" > "$root/etc/hosts"
echo "$name" > /proc/sys/kernel/hostname
[ "${1:-}" = "--" ] && shift
if [ -n "$entry" ]; then
  shift
  set -- /.sandbox-entrypoint "$@"
fi
exec chroot "$root" /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$workdir" "$@"
