#!/usr/bin/env bash
# Escape class: the dashboard URL carries the gateway token; a token on a command line is readable by
# every local user (/proc/<pid>/cmdline, `ps`) and ends up in process accounting and logs. launch
# prints the URL and opens a browser only with --open, handing xdg-open (looked up on PATH) the path
# of a 0600 page that redirects to the URL, never the URL itself.
#
# The detector is shown to work first: the fake xdg-open called the way launch used to call it (with
# the URL) is caught.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon

# A fake xdg-open first on PATH: records its argv and, for a file argument, the file's mode and
# whether it holds a URL.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/xdg-open" <<'EOF'
#!/bin/sh
log=${0%/bin/xdg-open}/xdg-open.log
{
  printf 'ARGV'; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\n'
  if [ -f "$1" ]; then
    printf 'MODE %s\n' "$(stat -c %a "$1")"
    grep -o 'http://127.0.0.1:[0-9]*/#token=[0-9a-f]*' "$1" | head -1 | sed 's/^/TARGET /'
  fi
} >>"$log.tmp" && mv "$log.tmp" "$log"
EOF
chmod 755 "$WORK/bin/xdg-open"
export PATH="$WORK/bin:$PATH"
xlog="$WORK/xdg-open.log"
ui='mkdir -p /tmp/www && echo hello-ui > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:18789 -h /tmp/www'

# Checks xdg-open's log against token $1: fails when the token is in its argv.
token_in_argv() { grep '^ARGV' "$xlog" | grep -qF -- "$1"; }

# --- the detector: the old way of opening (URL as the argument) is caught
xdg-open "http://127.0.0.1:1/#token=0123456789abcdef"
token_in_argv "0123456789abcdef" || die "the fake xdg-open does not record its argv: the check below proves nothing"
rm -f "$xlog"

# --- without --open: the URL is printed, no browser is started
name="tfb-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach --port 0 -- /bin/sh -c "$ui"
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
expect_contains "$TF_OUT" "dashboard: http://127.0.0.1:" "the URL is printed"
sleep 1
[[ ! -e $xlog ]] || die "a browser was opened without --open: $(cat "$xlog")"
tf_ok launch stop --name "$name"

# --- with --open
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach --port 0 --open --json -- /bin/sh -c "$ui"
[[ $TF_RC -eq 0 ]] || die "detached launch with --open failed: $TF_ERR"
url=$(jq -r .dashboard_url <<<"$TF_OUT")
token=${url##*#token=}
[[ ${#token} -eq 48 ]] || die "no token in the dashboard URL: $url"
wait_until "test -s '$xlog'"
log "xdg-open got: $(grep '^ARGV' "$xlog" | sed "s/$token/<TOKEN>/g")"
if token_in_argv "$token"; then die "the gateway token is on xdg-open's command line"; fi
page=$(sed -n 's/^ARGV \[\(.*\)\]$/\1/p' "$xlog")
expect_eq "$page" "$TOKFENCE_HOME/openclaw/$name/dashboard.html" "xdg-open gets the page's path"
expect_eq "$(sed -n 's/^MODE //p' "$xlog")" 600 "the page's mode"
expect_eq "$(sed -n 's/^TARGET //p' "$xlog")" "$url" "the page redirects to the dashboard URL"
expect_eq "$(stat -c %a "$(dirname "$page")")" 700 "the page's directory is private"
wait_until "curl -fsS '${url%%#*}' | grep -q hello-ui" 15

tf_ok launch stop --name "$name"
[[ ! -e $page ]] || die "the page holding the token survives launch stop"
expect_nothing_left "$name"
