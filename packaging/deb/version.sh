#!/bin/sh
# Prints the Debian package version for the current git checkout.
#   tag v1.2.3, on the tag            -> 1.2.3
#   tag v1.2.3, 4 commits after it    -> 1.2.3+4.gabcdef0
#   no tag                            -> 0.0~git20261204.abcdef0
#   uncommitted changes               -> ... +dirty appended
# Debian versions must start with a digit; "~" sorts before anything, so
# an untagged build is older than any release.
set -eu
d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
if [ -n "$d" ]; then
	v=${d#v}
	dirty=""
	case $v in *-dirty) v=${v%-dirty}; dirty="+dirty" ;; esac
	# 1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0
	v=$(printf '%s' "$v" | sed -E 's/-([0-9]+)-(g[0-9a-f]+)$/+\1.\2/')
	# 1.2.3-rc1 -> 1.2.3~rc1 (a pre-release sorts before the release)
	v=$(printf '%s' "$v" | sed -E 's/-(rc|alpha|beta)/~\1/')
	printf '%s%s\n' "$v" "$dirty"
	exit 0
fi
h=$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0000000)
day=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 19700101)
dirty=""
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty="+dirty"; fi
printf '0.0~git%s.%s%s\n' "$day" "$h" "$dirty"
