package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/dashboard"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
)

// The dashboard's pages run against a real store in a temporary file; what
// the forms do goes to a recording App, so a test asserts exactly what the
// app was asked (the app itself is tested in cmd/crier, and the whole
// thing in a browser there).

// t0 is the tests' clock: a Wednesday morning in November (UTC = London).
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fakeApp records what the forms ask of the application.
type fakeApp struct {
	mu       sync.Mutex
	opened   []incidents.Change
	changed  []changeCall
	checked  []dashboard.Compose
	sent     []dashboard.Compose
	exported []store.LogFilter
	// err, if set, is returned by the next action (and cleared).
	err     error
	outcome dispatch.Outcome
	// repeatOf is what Broadcast answers as the earlier identical
	// broadcast; recent what RepeatOf reports.
	repeatOf, recent *store.Trigger
	pf               dispatch.Preflight
	st               *store.Store
}

type changeCall struct {
	ID, Kind string
	C        incidents.Change
}

func (f *fakeApp) takeErr() error {
	err := f.err
	f.err = nil
	return err
}

func (f *fakeApp) OpenIncident(ctx context.Context, c incidents.Change) (dispatch.IncidentResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, c)
	if err := f.takeErr(); err != nil {
		return dispatch.IncidentResult{}, err
	}
	return dispatch.IncidentResult{Incident: &incidents.Incident{ID: "INC-7"}, Outcome: f.outcome}, nil
}

func (f *fakeApp) ChangeIncident(ctx context.Context, id, kind string, c incidents.Change) (dispatch.IncidentResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = append(f.changed, changeCall{id, kind, c})
	if err := f.takeErr(); err != nil {
		return dispatch.IncidentResult{}, err
	}
	return dispatch.IncidentResult{Incident: &incidents.Incident{ID: id}, Update: incidents.Update{Seq: 2}, Outcome: f.outcome}, nil
}

func (f *fakeApp) Choices() dashboard.Choices {
	return dashboard.Choices{Audiences: []string{"clinicians", "ministers"},
		Channels:  []dashboard.ChannelChoice{{Name: "sms", Kind: "sms"}, {Name: "mail", Kind: "email"}},
		Briefings: []dashboard.BriefingChoice{{Name: "daily", Title: "Daily report", Schedule: "CRON_TZ=Europe/London 0 8 * * *", Audience: "ministers", Channels: []string{"mail"}}}}
}

func (f *fakeApp) Preflight(ctx context.Context, c dashboard.Compose) (dispatch.Preflight, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, c)
	return f.pf, f.takeErr()
}

func (f *fakeApp) RepeatOf(ctx context.Context, c dashboard.Compose) (*store.Trigger, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recent, nil
}

func (f *fakeApp) Broadcast(ctx context.Context, c dashboard.Compose) (dashboard.Sent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, c)
	return dashboard.Sent{Outcome: f.outcome, RepeatOf: f.repeatOf}, f.takeErr()
}

func (f *fakeApp) ExportLog(ctx context.Context, flt store.LogFilter, w io.Writer, format string) error {
	f.mu.Lock()
	f.exported = append(f.exported, flt)
	f.mu.Unlock()
	_, err := io.WriteString(w, "exported as "+format+"\n")
	return err
}

// env is one test's dashboard: a store, a recording app, and a server
// that signs every request in as who.
type env struct {
	t       *testing.T
	st      *store.Store
	app     *fakeApp
	d       *dashboard.Dashboard
	srv     *httptest.Server
	who     dashboard.Principal
	notify  int
	mu      sync.Mutex
	clients *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"), store.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, app: &fakeApp{st: st}, who: dashboard.Principal{Name: "ann", Role: "operator", CSRF: "csrf-1"}}
	d, err := dashboard.New(dashboard.Options{Read: st, App: e.app, Now: func() time.Time { return t0 }, Poll: 5 * time.Millisecond,
		Who: func(*http.Request) (dashboard.Principal, bool) {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.who, e.who.Role != ""
		},
		Notify: func() { e.mu.Lock(); e.notify++; e.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	mux := http.NewServeMux()
	for _, p := range d.Pages() {
		mux.HandleFunc(p.Method+" "+p.Pattern, p.Handler)
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	t.Cleanup(d.Close)
	e.clients = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

// get fetches a page and returns its status, headers and body.
func (e *env) get(path string) (int, http.Header, string) {
	e.t.Helper()
	resp, err := e.clients.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// post submits a form and returns status, redirect target and body.
func (e *env) post(path string, form url.Values) (int, string, string) {
	e.t.Helper()
	resp, err := e.clients.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// openIncident stores an incident as the app would.
func (e *env) openIncident(c incidents.Change) *incidents.Incident {
	e.t.Helper()
	inc, err := incidents.Open(c, t0)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		e.t.Fatal(err)
	}
	return inc
}

// plan writes a trigger with n queued SMS deliveries (and one suppressed)
// and returns its id.
func (e *env) plan(key string, n int) int64 {
	e.t.Helper()
	var id int64
	err := e.st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: key, Kind: "send", Name: "Test broadcast"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		id = tr.ID
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for i := 0; i < n; i++ {
			sub := "p" + string(rune('a'+i))
			if err := enq.Add(&store.NewDelivery{SubscriberID: sub, Channel: "sms", Kind: "sms", Address: "+4474000000" + sub, Status: store.StatusQueued,
				Text: "Referrals are down <b>in Wales</b>.", Segments: 1}); err != nil {
				return err
			}
		}
		if err := enq.Add(&store.NewDelivery{SubscriberID: "nobody", Channel: "sms", Kind: "sms", Status: store.StatusSuppressed, Reason: "no_address"}); err != nil {
			return err
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		return tx.SetPlanned(tr.ID, enq.Written())
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// deliver sends every queued SMS of trigger id (the dispatcher's part).
func (e *env) deliver(id int64) {
	e.t.Helper()
	ctx := context.Background()
	cs, err := e.st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 100, Lease: time.Minute, TriggerIDs: []int64{id}})
	if err != nil {
		e.t.Fatal(err)
	}
	var rs []store.Result
	for _, c := range cs {
		rs = append(rs, store.Result{ID: c.ID, Status: store.StatusSent, ProviderID: "SM" + c.SubscriberID})
	}
	if err := e.st.Record(ctx, rs); err != nil {
		e.t.Fatal(err)
	}
}

// mustContain fails unless body has every one of want.
func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
}
