#!/usr/bin/env bash
# Builds the product's container image as an OCI image layout, without a daemon or
# a registry: one layer holding the `stash` binary, the shared libraries it and the
# PostgreSQL client tools need (copied from this machine, found with ldd), the CA
# bundle, and a passwd/group naming the non-root user 65532 the image runs as. The
# layer is reproducible: the same inputs give the same digests.
#
#   cargo build --release -p stash-operator
#   operator/deploy/image.sh --out target/image
#   skopeo copy oci:target/image:v0.1.0 docker://registry.example.com/stash:v0.1.0
#
# Options: --binary PATH (default target/release/stash), --tag TAG (default the
# crate's version, v0.1.0), --out DIR (required), --no-postgres (leave out pg_dump,
# pg_dumpall and psql, which the PostgreSQL Functions run).
set -euo pipefail

binary=target/release/stash
tag=""
out=""
postgres=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-postgres) postgres=0; shift ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "image.sh: --out DIR is required" >&2; exit 2; }
[ -x "$binary" ] || { echo "image.sh: no executable at $binary (cargo build --release -p stash-operator)" >&2; exit 2; }
if [ -z "$tag" ]; then
  tag="v$("$binary" version | awk '{print $2}')"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"

# Copies an executable and every library ldd resolves for it, at the same paths.
add_with_libs() {
  local exe="$1" dest="$2"
  install -m 0755 "$exe" "$root$dest"
  ldd "$exe" | awk '/=> \// {print $3} /^\s*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

add_with_libs "$binary" /usr/local/bin/stash
if [ "$postgres" = 1 ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$pgbin" ] || { echo "image.sh: no PostgreSQL client under /usr/lib/postgresql (apt-get install postgresql-client, or --no-postgres)" >&2; exit 2; }
  for tool in pg_dump pg_dumpall psql; do
    add_with_libs "$pgbin/$tool" "/usr/local/bin/$tool"
  done
fi
# The dynamic loader is where the binaries' PT_INTERP names it.
for loader in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
  if [ -e "$loader" ] && [ ! -e "$root$loader" ]; then
    mkdir -p "$root$(dirname "$loader")"
    cp -L "$loader" "$root$loader"
  fi
done
if [ -e /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"

blobs="$work/layout/blobs/sha256"
mkdir -p "$blobs"
find "$root" -exec touch -h -d @0 {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n < "$work/layer.tar" > "$work/layer.tar.gz"
layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$blobs/$layer"

# Writes stdin as a blob; prints its digest and size.
blob() {
  cat > "$work/blob"
  local d
  d=$(sha256sum "$work/blob" | cut -d' ' -f1)
  mv "$work/blob" "$blobs/$d"
  echo "$d $(stat -c %s "$blobs/$d")"
}

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
read -r config config_size < <(printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"config\":{\"User\":\"65532:65532\",\"Entrypoint\":[\"/usr/local/bin/stash\"],\"Env\":[\"PATH=/usr/local/bin:/usr/bin:/bin\",\"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\"],\"WorkingDir\":\"/\",\"Labels\":{\"org.opencontainers.image.title\":\"stash\",\"org.opencontainers.image.version\":\"$tag\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]},\"history\":[{\"created_by\":\"operator/deploy/image.sh\"}]}" | blob)
read -r manifest manifest_size < <(printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer\",\"size\":$layer_size}]}" | blob)
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest\",\"size\":$manifest_size,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$tag\"}}]}" > "$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/layout/oci-layout"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work/layout" "$out"
echo "image $tag: $out (manifest sha256:$manifest, layer $((layer_size / 1024 / 1024)) MiB compressed)"
