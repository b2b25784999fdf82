package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package; .ci/run installs it) driven over the DevTools protocol against a
// real `crier serve` with sandbox channels. Every page visited is saved as
// a PNG under $CRIER_SCREENSHOTS (default: the test's temporary directory).

// chromiumPath finds the browser, or skips the test without one unless
// CRIER_REQUIRE_BROWSER is set (CI sets it, so CI never skips silently).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CRIER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CRIER_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium found (install Debian's chromium package, or set CRIER_CHROMIUM)")
	}
	t.Skip("no chromium found: install it (apt-get install chromium) to run the browser tests")
	return ""
}

// browser is one headless Chromium tab for a test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string // screenshots
	n    int
}

// newBrowser starts Chromium with a fresh profile; it is stopped when the
// test ends.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("no-proxy-server", true), // 127.0.0.1 only, never through a proxy
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	// The whole browser lives at most 5 minutes; each step has its own
	// bound (within).
	life, cancelLife := context.WithTimeout(context.Background(), 5*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelLife() })
	dir := os.Getenv("CRIER_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, base: base, dir: dir}
	// The first action starts the browser, which lives as long as the
	// context of that action: the tab's, not a step's.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromiumPath(t), err)
	}
	return b
}

// within bounds one step: nothing in the browser may hang the test.
func (b *browser) within() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 30*time.Second)
}

// do runs steps, failing the test with what was being done.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// submit clicks a button or link that leads to another page and waits
// for it; it returns the new page's path. The page must not be an error.
func (b *browser) submit(what, sel string) string {
	b.t.Helper()
	if st := b.follow(what, sel); st >= 400 {
		b.t.Errorf("%s: the page answered %d", what, st)
	}
	return b.path()
}

// submitInvalid is submit for a form the server must refuse with 422 and
// show again with its problems.
func (b *browser) submitInvalid(what, sel string) {
	b.t.Helper()
	if st := b.follow(what, sel); st != 422 {
		b.t.Errorf("%s: the page answered %d, want 422", what, st)
	}
}

func (b *browser) follow(what, sel string) int64 {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// open loads a dashboard path.
func (b *browser) open(path string) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	if resp.Status >= 400 {
		b.t.Errorf("open %s: the page answered %d", path, resp.Status)
	}
}

// path is the current page's path and query.
func (b *browser) path() string {
	b.t.Helper()
	loc := b.eval("location", `location.pathname + location.search`)
	return loc
}

// text is the text of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// attr is an attribute of the first element sel matches (read through
// the DOM, so it works with scripts off).
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("read %s of %s: %v", name, sel, err)
	}
	return a.Value
}

// noScript turns the page's JavaScript off, as a browser with scripts
// disabled (or blocked) would have it.
func (b *browser) noScript() {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		b.t.Fatalf("turn scripts off: %v", err)
	}
}

// eval evaluates a JavaScript expression that gives a string.
func (b *browser) eval(what, expr string) string {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return s
}

// contains fails unless the text of sel contains every one of want.
func (b *browser) contains(sel string, want ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s on %s does not say %q; it says:\n%s", sel, b.path(), w, got)
		}
	}
}

// shot saves the whole page as NN-name.png.
func (b *browser) shot(name string) { b.t.Helper(); b.save(name, chromedp.FullScreenshot(100)) }

// shotScreen saves what fits on the screen (a phone's first view).
func (b *browser) shotScreen(name string) { b.t.Helper(); b.save(name, chromedp.CaptureScreenshot()) }

func (b *browser) save(name string, capture chromedp.Action[[]byte]) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	png, err := chromedp.Run(ctx, capture)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.n++
	p := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}
