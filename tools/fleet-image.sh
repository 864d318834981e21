#!/usr/bin/env bash
# Build the Debian 12 fleet image from Debian packages (see sandbox/images/README.md).
# Tagged by a hash of its recipe; skipped when an image with that tag exists.
set -euo pipefail

RECIPE=${RECIPE:-sandbox/images/fleet-debian12}
REPO=${FLEET_IMAGE_REPO:-gpuops/fleet}
STABLE=${FLEET_IMAGE_STABLE:-debian12}
BASE_REPO=${BASE_IMAGE_REPO:-gpuops/debian12-base}
here=$(dirname "$0")

hash=$( { (cd "$RECIPE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); \
         sha256sum <"$here/fleet-image.sh"; } | sha256sum | cut -c1-12)
image="$REPO:$STABLE-$hash"

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "fleet-image: $image exists (recipe unchanged)"
else
    # shellcheck disable=SC1091
    . "$RECIPE/base.env"
    base="$BASE_REPO:$hash"
    if ! docker image inspect "$base" >/dev/null 2>&1; then
        mirror=$(python3 "$here/debian_mirror.py" "$SUITE")
        mkdir -p build/images
        rootfs=$(mktemp -d build/images/rootfs.XXXXXX)
        trap 'rm -rf "$rootfs"' EXIT
        echo "fleet-image: debootstrap --variant=$VARIANT $SUITE from $mirror"
        start=$SECONDS
        debootstrap --variant="$VARIANT" --components="$COMPONENTS" "$SUITE" "$rootfs" "$mirror" \
            >build/images/debootstrap.log 2>&1 || {
            tail -n 30 build/images/debootstrap.log >&2
            exit 1
        }
        echo "fleet-image: debootstrap took $((SECONDS - start)) s; importing $base"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb
        tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
    fi
    echo "fleet-image: building $image"
    start=$SECONDS
    DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$base" -t "$image" "$RECIPE" >/dev/null
    echo "fleet-image: docker build took $((SECONDS - start)) s"
fi
docker tag "$image" "$REPO:$STABLE"
echo "fleet-image: $REPO:$STABLE -> $image"
