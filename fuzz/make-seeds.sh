#!/usr/bin/env bash
# Recreates the committed seed corpora fuzz/seeds/<target>/ from the restic fixture
# repositories (tests/fixtures/restic-v1 and -v2, password `fixture`): what a real
# repository holds, as each target takes it. Needs restic and zstd; run it when the
# fixtures or a target's input format change. run-all.sh hands each target its seeds
# beside the corpus it grows (libFuzzer reads both, writes only the corpus).
#
#   pack_header, crypto_open   raw files as stored (packs, indexes, snapshots, keys)
#   index_json, json_documents decrypted index files, snapshots, config, trees
#   tree_json                  decrypted trees
#   snapshot_json              decrypted snapshots
#   key_config_json            key files (stored as plain JSON) and decrypted configs
#   lock_json                  restic lock documents (restic removes its locks, so
#                              these are written here in restic's shape)
#   zstd_decompress            this target's header (claimed length, piece size,
#                              level) and zstd frames of the fixtures' file contents
#   location_parser            one repository location per file, of every scheme
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fixtures=$here/../tests/fixtures
out=$here/seeds
export RESTIC_PASSWORD=fixture
unset RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND

rm -rf "$out"
for t in pack_header crypto_open index_json json_documents tree_json snapshot_json \
    key_config_json lock_json zstd_decompress location_parser; do
    mkdir -p "$out/$t"
done

# put TARGET NAME: stdin into fuzz/seeds/TARGET/NAME
put() { cat >"$out/$1/$2"; }

for v in v1 v2; do
    repo=$fixtures/restic-$v
    r() { restic --no-cache --quiet -r "$repo" "$@"; }
    for f in "$repo"/data/*/* "$repo"/index/* "$repo"/snapshots/* "$repo"/config; do
        name=$v-$(basename "$(dirname "$f")")-$(basename "$f" | cut -c1-12)
        put pack_header "$name" <"$f"
        put crypto_open "$name" <"$f"
    done
    for f in "$repo"/keys/*; do
        put key_config_json "$v-key-$(basename "$f" | cut -c1-12)" <"$f"
        put crypto_open "$v-key-$(basename "$f" | cut -c1-12)" <"$f"
    done
    r cat config | put key_config_json "$v-config"
    r cat config | put json_documents "$v-config"
    for f in "$repo"/index/*; do
        id=$(basename "$f")
        r cat index "$id" | put index_json "$v-${id:0:12}"
        r cat index "$id" | put json_documents "$v-index-${id:0:12}"
    done
    for f in "$repo"/snapshots/*; do
        id=$(basename "$f")
        r cat snapshot "$id" | put snapshot_json "$v-${id:0:12}"
        r cat snapshot "$id" | put json_documents "$v-snapshot-${id:0:12}"
    done
    r list blobs | while read -r kind id; do
        case $kind in
        tree)
            r cat blob "$id" | put tree_json "$v-${id:0:12}"
            r cat blob "$id" | put json_documents "$v-tree-${id:0:12}"
            ;;
        data)
            # Header: claimed length (3 bytes, little endian), piece size 64 (2
            # bytes), level 3; then the frame.
            plain=$(mktemp)
            r cat blob "$id" >"$plain"
            len=$(stat -c %s "$plain")
            {
                printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8 & 255)))\\x$(printf %02x $((len >> 16 & 255)))"
                printf '\x40\x00\x03'
                zstd -q -3 -c "$plain"
            } | put zstd_decompress "$v-${id:0:12}"
            rm -f "$plain"
            ;;
        esac
    done
done

i=0
for lock in \
    '{"time":"2022-03-04T05:06:07.123456789+01:00","exclusive":false,"hostname":"fixture-host","username":"root","pid":4242,"uid":0,"gid":0}' \
    '{"time":"2022-03-04T05:06:07Z","exclusive":true,"hostname":"fixture-host","username":"backup","pid":1,"uid":1000,"gid":1000}'; do
    printf '%s' "$lock" | put lock_json "restic-$i"
    i=$((i + 1))
done

i=0
for location in /srv/restic-repo local:/srv/restic-repo local:relative/repo \
    s3:s3.amazonaws.com/bucket/prefix s3:https://s3.example.com/bucket \
    s3:http://127.0.0.1:9000/stash/demo gs:bucket:/prefix/path azure:container:/prefix \
    memory:test rest:http://host:8000/ sftp:user@host:/srv/repo; do
    printf '%s' "$location" | put location_parser "location-$i"
    i=$((i + 1))
done

find "$out" -type f | wc -l | xargs echo "make-seeds: files written:"
