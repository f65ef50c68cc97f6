#!/bin/sh
# Regenerates docs/review-page.png (the README's picture of `knockout report`): the shipped examples
# and a file that is not an image, cut out with --report, the page of that report in headless chromium.
# Run from a checkout with knockout installed: sh docs/review-page.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/shoot"
cp "$here"/examples/*.jpg "$work/shoot/"
printf 'not a photo' > "$work/shoot/notes.jpg"
(cd "$work" && knockout cut shoot -o cutouts --report shoot.csv -q || true)
(cd "$work" && knockout report shoot.csv -o review.html --background '#00b140')
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,760 \
  --screenshot="$here/docs/review-page.png" "file://$work/review.html"
