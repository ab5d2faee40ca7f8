# shellcheck shell=sh
# debian/tests/lib.sh — the harness of the box tests (sourced, not run): the
# package tests here and .ci/e2e-systemd.
#
# From the host (`make deb-test`): each test boots a fresh Debian box with
# .ci/box and drives it from outside; the .deb is dist/*.deb (or $DEB) and the
# guest simulator bin/dls-guest (or $DLS_GUEST).
# Under autopkgtest (AUTOPKGTEST_TMP set, isolation-machine, needs-root) the
# testbed itself is the box: commands run directly, and $DEB must name the
# .deb to install (the tests install, upgrade and purge it themselves).
#
# A caller outside debian/tests sets repo, box and logdir before sourcing.
#
# Output: one PASS/FAIL line per check, then "N passed, M failed"; exit 0 only
# when nothing failed. Every wait is bounded. Logs go to $logdir.

set -eu

repo=${repo:-$(cd "$(dirname "$0")/../.." && pwd)}
test_name=$(basename "$0")
BOX=$repo/.ci/box
box=${box:-${DEB_TEST_BOX:-deb-$test_name-$$}}
logdir=${logdir:-${DEB_TEST_LOG_DIR:-${AUTOPKGTEST_ARTIFACTS:-$repo/.cache/deb-test}/$test_name}}
mkdir -p "$logdir"
rm -f "$logdir"/*.log "$logdir"/*.txt

if [ -n "${AUTOPKGTEST_TMP:-}" ]; then local_mode=1; else local_mode=; fi

passed=0 failed=0 fatal=
pass() { passed=$((passed + 1)); printf 'PASS %s: %s\n' "$test_name" "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s%s\n' "$test_name" "$1" "${2:+ ($2)}"; }

# step [-f] NAME FUNC [ARGS…] runs FUNC in a subshell with set -e, its output
# to the step's log, and prints PASS or FAIL. After a failed -f (fatal) step
# the remaining steps are not run and count as failed.
step() {
	fatal_step=
	if [ "$1" = -f ]; then fatal_step=1; shift; fi
	name=$1
	shift
	if [ -n "$fatal" ]; then
		fail "$name" "not run: '$fatal' failed"
		return 0
	fi
	slug=$(printf '%s' "$name" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')
	log=$logdir/$slug.log
	start=$(date +%s)
	set +e
	(
		set -e
		"$@"
	) >"$log" 2>&1
	rc=$?
	set -e
	took=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		pass "$name [${took}s]"
	else
		fail "$name [${took}s]" "log: $log"
		sed -e 's/^/    | /' "$log" | tail -n 15
		if [ -n "$fatal_step" ]; then fatal=$name; fi
	fi
	return 0
}

# bx CMD… runs CMD in the box, stdin closed; bxt SECONDS CMD… bounded.
bx() {
	if [ -n "$local_mode" ]; then "$@" </dev/null; else "$BOX" exec "$box" -- "$@"; fi
}
bxt() {
	t=$1
	shift
	bx timeout "$t" "$@"
}
# bcp HOSTFILE BOXPATH copies a host file into the box.
bcp() {
	if [ -n "$local_mode" ]; then cp "$1" "$2"; else "$BOX" cp "$box" "$1" "$2"; fi
}

guest() {
	bxt 120 /usr/local/bin/dls-guest -url https://127.0.0.1:443 -http http://127.0.0.1:80 -insecure "$@"
}

# wait_active SECONDS waits until the service is active (READY=1 sent).
wait_active() {
	deadline=$(($(date +%s) + $1))
	while :; do
		st=$(bx systemctl is-active fastapi-dls.service || true)
		[ "$st" = active ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "service is '$st' after $1 s"
			bx systemctl status --no-pager -n 20 fastapi-dls.service || true
			return 1
		fi
		sleep 0.5
	done
}

# find_inputs sets deb (the .deb under test) and guest_bin (the guest
# simulator), building bin/dls-guest when missing. Runs in the test's shell
# (a step would lose the variables), printing its own PASS/FAIL line.
find_inputs() {
	if find_inputs_ >"$logdir/inputs.log" 2>&1; then
		pass "find .deb and dls-guest ($(basename "$deb"))"
	else
		fail "find .deb and dls-guest" "log: $logdir/inputs.log"
		sed -e 's/^/    | /' "$logdir/inputs.log" | tail -n 15
		fatal="find .deb and dls-guest"
	fi
}
find_inputs_() {
	deb=${DEB:-}
	if [ -z "$deb" ]; then
		for f in "$repo"/dist/fastapi-dls_*.deb; do deb=$f; done
	fi
	if [ -z "$deb" ] || [ ! -f "$deb" ]; then echo "no .deb: run make deb or set DEB"; return 1; fi
	guest_bin=${DLS_GUEST:-$repo/bin/dls-guest}
	if [ ! -x "$guest_bin" ]; then
		(cd "$repo" && CGO_ENABLED=0 ${GO:-go} build -trimpath -o bin/dls-guest ./cmd/dls-guest)
		guest_bin=$repo/bin/dls-guest
	fi
	echo "deb: $deb"
	echo "guest: $guest_bin"
}

# note_first_box_build says on the console that the next step builds the box
# image, when it is not cached yet: minutes without other output otherwise.
note_first_box_build() {
	if [ -n "$local_mode" ]; then return 0; fi
	suite=${BOX_SUITE:-bookworm}
	if [ -f "${BOX_CACHE:-$repo/.cache/box}/$suite.tar" ]; then return 0; fi
	echo "box: building the $suite image first (debootstrap from the Debian archive: about 150 s; later runs reuse it)"
}

start_box() {
	if [ -n "$local_mode" ]; then return 0; fi
	"$BOX" build
	"$BOX" start "$box"
}

copy_inputs() {
	bx mkdir -p /root/pkg /root/guest /usr/local/bin
	bcp "$deb" /root/pkg/fastapi-dls.deb
	bcp "$guest_bin" /usr/local/bin/dls-guest
	bx chmod 0755 /usr/local/bin/dls-guest
}

# on_exit names a function of the test to run first at exit (cleanup).
on_exit=
finish() {
	rc=$?
	if [ -n "$on_exit" ]; then "$on_exit" || true; fi
	if [ -z "$local_mode" ] && "$BOX" status "$box" >/dev/null 2>&1; then
		bx journalctl -b --no-pager -o short-precise >"$logdir/journal.txt" 2>&1 || true
		bx journalctl -b -u fastapi-dls.service --no-pager -o verbose >"$logdir/journal-fastapi-dls.txt" 2>&1 || true
		"$BOX" stop "$box" >"$logdir/box-stop.log" 2>&1 || echo "warning: box stop failed, see $logdir/box-stop.log" >&2
		mv -f "${BOX_ROOT:-/var/tmp/fastapi-dls-box}/$box.console.log" "$logdir/console.log" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ]; then fail "harness" "exit status $rc"; fi
	echo "$passed passed, $failed failed"
	if [ $failed -eq 0 ] && [ $rc -eq 0 ]; then exit 0; fi
	exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM
