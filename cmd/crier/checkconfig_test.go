package main

import (
	"fmt"
	"strings"
	"testing"
)

// checkConfigBase is a small valid config; each case below breaks one
// thing in it. The comment at the end of a line names it, so each edit
// touches exactly one line and the edits combine.
const checkConfigBase = `store:
  path: crier.db
server:
  tokens:
    - name: ops
      token: ${CRIER_TEST_TOKEN} # token
channels:
  sms:
    driver: sandbox
    sandbox:
      kind: sms # sandbox-kind
  mail:
    driver: sandbox
    sandbox:
      kind: email
audiences:
  clinicians:
    roles: [clinician]
subscribers:
  inline:
    - id: dr-a
      name: Dr A
      roles: [clinician]
      nations: [wales]
      phone: "+447400123410" # phone
      email: a@example.org
briefings:
  daily:
    schedule: "CRON_TZ=Europe/London 0 8 * * *" # schedule
    audience: clinicians # briefing-audience
    channels: [mail] # briefing-channels
alerts:
  page:
    audience: clinicians # alert-audience
    channels: [sms] # alert-channels
`

const inlineSecret = "abcdef0123456789inlineSECRETvalue"

// problem is one expected line of check-config's report.
type problem struct {
	path string // key path that must be named
	near string // a substring of the YAML line it must be reported on ("" = line unknown)
	also string // another substring the message must contain ("" = none)
}

type checkCase struct {
	name  string
	edit  func(string) string
	files map[string]string // extra files under the config directory
	want  []problem
}

func replaceOnce(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic(fmt.Sprintf("test bug: %q not in the base config", old))
		}
		return strings.Replace(s, old, new, 1)
	}
}

func chain(fs ...func(string) string) func(string) string {
	return func(s string) string {
		for _, f := range fs {
			s = f(s)
		}
		return s
	}
}

var (
	editUnknownTop   = replaceOnce("store:\n", "colour: blue\nstore:\n")
	editUnknownDeep  = replaceOnce("kind: sms # sandbox-kind\n", "kind: sms # sandbox-kind\n      kinds: [sms]\n")
	editBadPhone     = replaceOnce(`"+447400123410" # phone`, `"12345" # phone`)
	editBadCron      = replaceOnce(`"CRON_TZ=Europe/London 0 8 * * *" # schedule`, `"61 8 * * *" # schedule`)
	editCronTZOnly   = replaceOnce(`"CRON_TZ=Europe/London 0 8 * * *" # schedule`, `"CRON_TZ=Europe/London" # schedule`)
	editAlertAud     = replaceOnce("clinicians # alert-audience", "medics # alert-audience")
	editBriefingAud  = replaceOnce("clinicians # briefing-audience", "ministers # briefing-audience")
	editNoChannel    = replaceOnce("[sms] # alert-channels", "[sms, pager] # alert-channels")
	editTemplateDir  = replaceOnce("store:\n", "templates:\n  dir: overrides\nstore:\n")
	editInlineSecret = replaceOnce("${CRIER_TEST_TOKEN} # token", inlineSecret+" # token")
	editUnsetEnv     = replaceOnce("${CRIER_TEST_TOKEN} # token", "${CRIER_UNSET_TOKEN} # token")
)

var badTemplate = map[string]string{"overrides/en/x.tmpl": "{{ if }"}

func checkConfigCases() []checkCase {
	return []checkCase{
		{name: "unknown key", edit: editUnknownTop,
			want: []problem{{path: "colour", near: "colour: blue", also: "unknown key"}}},
		{name: "two unknown keys", edit: chain(editUnknownTop, editUnknownDeep),
			want: []problem{{path: "colour", near: "colour: blue"}, {path: "channels.sms.sandbox.kinds", near: "kinds: [sms]"}}},
		{name: "invalid phone", edit: editBadPhone,
			want: []problem{{path: "subscribers.inline[0].phone", near: `phone: "12345"`, also: "12345"}}},
		{name: "bad cron spec", edit: editBadCron,
			want: []problem{{path: "briefings.daily.schedule", near: `schedule: "61 8`, also: "61"}}},
		{name: "CRON_TZ without fields", edit: editCronTZOnly,
			want: []problem{{path: "briefings.daily.schedule", near: `schedule: "CRON_TZ=Europe/London"`}}},
		{name: "alert audience missing", edit: editAlertAud,
			want: []problem{{path: "alerts.page.audience", near: "audience: medics", also: "medics"}}},
		{name: "briefing audience missing", edit: editBriefingAud,
			want: []problem{{path: "briefings.daily.audience", near: "audience: ministers", also: "ministers"}}},
		{name: "channel missing", edit: editNoChannel,
			want: []problem{{path: "alerts.page.channels[1]", near: "channels: [sms, pager]", also: "pager"}}},
		{name: "template syntax error", edit: editTemplateDir, files: badTemplate,
			want: []problem{{path: "templates.dir", also: "x.tmpl"}}},
		{name: "inline secret", edit: editInlineSecret,
			want: []problem{{path: "server.tokens[0].token", near: inlineSecret + " # token", also: "${"}}},
		{name: "unset env secret", edit: editUnsetEnv,
			want: []problem{{path: "server.tokens[0].token", near: "${CRIER_UNSET_TOKEN}", also: "CRIER_UNSET_TOKEN"}}},
	}
}

// runCheckConfig writes the case's config and files and runs check-config.
func runCheckConfig(t *testing.T, yaml string, files map[string]string) result {
	t.Helper()
	h := newHarness(t, yaml)
	h.setenv("CRIER_TEST_TOKEN", "0123456789abcdef0123456789abcdef")
	for name, content := range files {
		h.write(name, content)
	}
	return h.run("check-config")
}

// assertProblems checks exit code 2 and that each problem is reported with
// its key path, and on its YAML line where the case knows it.
func assertProblems(t *testing.T, yaml string, r result, want []problem) {
	t.Helper()
	if r.code != 2 {
		t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(r.stderr, "\n")
	for _, p := range want {
		var hit string
		for _, l := range lines {
			if strings.Contains(l, p.path+":") {
				hit = l
				break
			}
		}
		if hit == "" {
			t.Errorf("no problem reported for %s:\n%s", p.path, r.stderr)
			continue
		}
		if p.near != "" {
			line := lineOf(t, yaml, p.near)
			if !strings.Contains(hit, fmt.Sprintf("line %d: %s", line, p.path)) {
				t.Errorf("%s is not reported on YAML line %d: %s", p.path, line, hit)
			}
		}
		if p.also != "" && !strings.Contains(hit, p.also) {
			t.Errorf("the problem with %s does not mention %q: %s", p.path, p.also, hit)
		}
	}
	assertNoSecrets(t, "check-config output", r.stdout+r.stderr, inlineSecret, "0123456789abcdef0123456789abcdef")
}

// TestCLI_CheckConfig_Base proves the base config of the failure cases is
// itself valid, so each case fails for its own reason.
func TestCLI_CheckConfig_Base(t *testing.T) {
	r := runCheckConfig(t, checkConfigBase, nil)
	if r.code != 0 {
		t.Fatalf("the base config is invalid: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "config OK") {
		t.Errorf("check-config on a good config says:\n%s", r.stdout)
	}
}

// TestCLI_CheckConfig_Problem runs check-config on one broken config per
// case: exit 2, the key path (and line) named, no panic, no secret echoed.
func TestCLI_CheckConfig_Problem(t *testing.T) {
	for _, tc := range checkConfigCases() {
		t.Run(tc.name, func(t *testing.T) {
			yaml := tc.edit(checkConfigBase)
			r := runCheckConfig(t, yaml, tc.files)
			assertProblems(t, yaml, r, tc.want)
		})
	}
}

// TestCLI_CheckConfig_AllAtOnce breaks everything in one file: every
// problem is reported in the same run.
func TestCLI_CheckConfig_AllAtOnce(t *testing.T) {
	var edits []func(string) string
	files := map[string]string{}
	var want []problem
	for _, tc := range checkConfigCases() {
		switch tc.name {
		case "unknown key", "inline secret", "bad cron spec":
			continue // covered by "two unknown keys", "unset env secret" and "CRON_TZ without fields"
		}
		edits = append(edits, tc.edit)
		want = append(want, tc.want...)
		for k, v := range tc.files {
			files[k] = v
		}
	}
	// A second briefing with the other bad cron spec and a second token with
	// an inline secret, so those are in the same file too.
	edits = append(edits,
		replaceOnce("alerts:\n", "  weekly:\n    schedule: \"61 8 * * *\"\n    audience: clinicians\n    channels: [mail]\nalerts:\n"),
		replaceOnce("channels:\n  sms:", "    - name: desk\n      token: "+inlineSecret+" # desk\nchannels:\n  sms:"))
	want = append(want,
		problem{path: "briefings.weekly.schedule", near: `schedule: "61 8`},
		problem{path: "server.tokens[1].token", near: inlineSecret + " # desk"})
	yaml := chain(edits...)(checkConfigBase)
	r := runCheckConfig(t, yaml, files)
	assertProblems(t, yaml, r, want)
	if !strings.Contains(r.stderr, fmt.Sprintf("has %d problem", len(want))) && !strings.Contains(r.stderr, "problem(s)") {
		t.Errorf("stderr does not count the problems:\n%s", r.stderr)
	}
	t.Logf("check-config reported:\n%s", r.stderr)
}
